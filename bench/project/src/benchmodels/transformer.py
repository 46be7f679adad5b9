"""Small transformers: an encoder classifier, a causal LM with its own loss, a ViT."""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

from .blocks import MLPBlock


class TextEncoder(nn.Module):
    def __init__(self, vocab: int = 2000, dim: int = 64, heads: int = 4, layers: int = 2,
                 classes: int = 6, length: int = 32) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab, dim)
        self.position = nn.Parameter(torch.zeros(1, length, dim))
        layer = nn.TransformerEncoderLayer(dim, heads, 2 * dim, dropout=0.1, batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.head = nn.Linear(dim, classes)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        h = self.encoder(self.embed(tokens) + self.position[:, : tokens.shape[1]])
        return self.head(h.mean(1))


def make_transformer_encoder() -> dict:
    return {
        "model": TextEncoder(),
        "inputs": lambda b: torch.randint(0, 2000, (b, 32)),
        "loss": nn.CrossEntropyLoss(),
        "num_classes": 6,
    }


class CausalSelfAttention(nn.Module):
    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, d = x.shape
        q, k, v = self.qkv(x).split(d, dim=2)
        q, k, v = (z.view(b, t, self.heads, d // self.heads).transpose(1, 2) for z in (q, k, v))
        att = (q @ k.transpose(-2, -1)) / math.sqrt(d // self.heads)
        mask = torch.ones(t, t, dtype=torch.bool, device=x.device).tril()
        att = att.masked_fill(~mask, float("-inf")).softmax(-1)
        return self.proj((att @ v).transpose(1, 2).reshape(b, t, d))


class Block(nn.Module):
    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.attn = CausalSelfAttention(dim, heads)
        self.mlp = MLPBlock(dim, 4 * dim, dropout=0.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.mlp(x + self.attn(self.norm(x)))


class TinyGPT(nn.Module):
    def __init__(self, vocab: int = 512, dim: int = 64, heads: int = 4, layers: int = 3,
                 length: int = 64) -> None:
        super().__init__()
        self.tokens = nn.Embedding(vocab, dim)
        self.position = nn.Embedding(length, dim)
        self.blocks = nn.ModuleList(Block(dim, heads) for _ in range(layers))
        self.norm = nn.LayerNorm(dim)
        self.lm_head = nn.Linear(dim, vocab, bias=False)

    def forward(self, input_ids: torch.Tensor, labels: torch.Tensor | None = None) -> dict:
        t = input_ids.shape[1]
        h = self.tokens(input_ids) + self.position(torch.arange(t, device=input_ids.device))
        for block in self.blocks:
            h = block(h)
        logits = self.lm_head(self.norm(h))
        out = {"logits": logits}
        if labels is not None:
            out["loss"] = F.cross_entropy(logits[:, :-1].flatten(0, 1), labels[:, 1:].flatten())
        return out


def make_tiny_gpt() -> dict:
    """A model that computes its own loss (the Hugging Face ``labels=`` convention)."""
    return {
        "model": TinyGPT(),
        "inputs": lambda b: {"input_ids": torch.randint(0, 512, (b, 64))},
        "step": lambda model, batch: model(**batch, labels=batch["input_ids"])["loss"],
    }


class ViTTiny(nn.Module):
    def __init__(self, image: int = 32, patch: int = 4, dim: int = 64, depth: int = 3,
                 heads: int = 4, classes: int = 10) -> None:
        super().__init__()
        self.patch = nn.Conv2d(3, dim, patch, stride=patch)
        self.cls = nn.Parameter(torch.zeros(1, 1, dim))
        self.position = nn.Parameter(torch.randn(1, (image // patch) ** 2 + 1, dim) * 0.02)
        layer = nn.TransformerEncoderLayer(dim, heads, 2 * dim, dropout=0.0, batch_first=True,
                                           norm_first=True, activation="gelu")
        self.encoder = nn.TransformerEncoder(layer, depth, enable_nested_tensor=False)
        self.head = nn.Sequential(nn.LayerNorm(dim), nn.Linear(dim, classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.patch(x).flatten(2).transpose(1, 2)
        h = torch.cat([self.cls.expand(h.shape[0], -1, -1), h], dim=1) + self.position
        return self.head(self.encoder(h)[:, 0])


def make_vit_tiny() -> dict:
    return {
        "model": ViTTiny(),
        "inputs": lambda b: torch.randn(b, 3, 32, 32),
        "loss": nn.CrossEntropyLoss(),
        "num_classes": 10,
    }
