"""An autoencoder, a VAE with its own step, a two-tower recommender."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F


class AutoEncoder(nn.Module):
    def __init__(self, features: int = 784, code: int = 32) -> None:
        super().__init__()
        self.encoder = nn.Sequential(nn.Linear(features, 256), nn.ReLU(), nn.Linear(256, code))
        self.decoder = nn.Sequential(nn.Linear(code, 256), nn.ReLU(), nn.Linear(256, features),
                                     nn.Sigmoid())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.encoder(x))


def make_autoencoder() -> dict:
    inputs = torch.rand(4, 784)
    return {
        "model": AutoEncoder(),
        "inputs": inputs,  # a fixed batch, re-batched along dim 0 by torchvet
        "loss": lambda out: F.mse_loss(out, torch.full_like(out, 0.5)),
    }


class VAE(nn.Module):
    def __init__(self, features: int = 128, latent: int = 16) -> None:
        super().__init__()
        self.encoder = nn.Sequential(nn.Linear(features, 128), nn.ReLU())
        self.mu = nn.Linear(128, latent)
        self.logvar = nn.Linear(128, latent)
        self.decoder = nn.Sequential(nn.Linear(latent, 128), nn.ReLU(), nn.Linear(128, features))

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        h = self.encoder(x)
        mu, logvar = self.mu(h), self.logvar(h)
        z = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar) if self.training else mu
        return {"recon": self.decoder(z), "mu": mu, "logvar": logvar}


def vae_step(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    out = model(x)
    kl = -0.5 * torch.mean(1 + out["logvar"] - out["mu"] ** 2 - out["logvar"].exp())
    return F.mse_loss(out["recon"], x) + kl


def make_vae() -> dict:
    return {"model": VAE(), "inputs": lambda b: torch.randn(b, 128), "step": vae_step}


class TwoTower(nn.Module):
    def __init__(self, users: int = 5000, items: int = 8000, dim: int = 32) -> None:
        super().__init__()
        self.user = nn.Embedding(users, dim)
        self.item = nn.EmbeddingBag(items, dim, mode="mean")
        self.user_mlp = nn.Sequential(nn.Linear(dim, dim), nn.ReLU(), nn.Linear(dim, dim))
        self.item_mlp = nn.Sequential(nn.Linear(dim, dim), nn.ReLU(), nn.Linear(dim, dim))

    def forward(self, user_ids: torch.Tensor, item_ids: torch.Tensor) -> torch.Tensor:
        u = self.user_mlp(self.user(user_ids))
        i = self.item_mlp(self.item(item_ids))
        return (u * i).sum(-1)


def make_two_tower() -> dict:
    return {
        "model": TwoTower(),
        "inputs": lambda b: {"user_ids": torch.randint(0, 5000, (b,)),
                             "item_ids": torch.randint(0, 8000, (b, 6))},
        "target": lambda b: torch.randint(0, 2, (b,)).float(),
        "loss": nn.BCEWithLogitsLoss(),
    }
