"""Multi-layer perceptrons and a tabular model."""

from __future__ import annotations

import torch
from torch import nn

from .blocks import MLPBlock


class TinyMLP(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(32, 64), nn.ReLU(), nn.Linear(64, 10))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def make_mlp_tiny() -> nn.Module:
    """A bare module: torchvet infers (batch, 32) float inputs from the first Linear."""
    return TinyMLP()


class DeepMLP(nn.Module):
    def __init__(self, features: int = 64, width: int = 128, depth: int = 6,
                 classes: int = 10) -> None:
        super().__init__()
        self.stem = nn.Linear(features, width)
        self.blocks = nn.Sequential(*[MLPBlock(width, 2 * width) for _ in range(depth)])
        self.head = nn.Linear(width, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.blocks(self.stem(x)))


def make_mlp_deep() -> dict:
    return {
        "model": DeepMLP(),
        "inputs": lambda b: torch.randn(b, 64),
        "loss": nn.CrossEntropyLoss(),
        "num_classes": 10,
    }


def make_mlp_regressor() -> dict:
    model = nn.Sequential(nn.Linear(20, 64), nn.Tanh(), nn.Linear(64, 64), nn.Tanh(),
                          nn.Linear(64, 3))
    return {
        "model": model,
        "inputs": lambda b: torch.randn(b, 20),
        "target": lambda b: torch.randn(b, 3),
        "loss": nn.MSELoss(),
    }


class TabularModel(nn.Module):
    """Keyword inputs (numeric features + a categorical id), dict output."""

    def __init__(self, numeric: int = 12, categories: int = 50, classes: int = 4) -> None:
        super().__init__()
        self.embed = nn.Embedding(categories, 8)
        self.mlp = nn.Sequential(nn.Linear(numeric + 8, 64), nn.GELU(), nn.Linear(64, 64),
                                 nn.GELU())
        self.logits = nn.Linear(64, classes)
        self.score = nn.Linear(64, 1)

    def forward(self, numeric: torch.Tensor, category: torch.Tensor) -> dict[str, torch.Tensor]:
        h = self.mlp(torch.cat([numeric, self.embed(category)], dim=-1))
        return {"logits": self.logits(h), "score": self.score(h).squeeze(-1)}


def make_tabular() -> dict:
    return {
        "model": TabularModel(),
        "inputs": lambda b: {"numeric": torch.randn(b, 12),
                             "category": torch.randint(0, 50, (b,))},
    }
