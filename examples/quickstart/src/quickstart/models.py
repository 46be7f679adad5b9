"""Healthy models: every default torchvet check passes on them."""

from __future__ import annotations

import torch
from torch import nn

from .data import DigitsLike


class MLP(nn.Module):
    def __init__(self, features: int = 16, hidden: int = 32, classes: int = 4) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Linear(features, hidden), nn.ReLU(), nn.Dropout(0.1))
        self.head = nn.Linear(hidden, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x))


def make_mlp() -> nn.Module:
    """A bare module: inputs come from [tool.torchvet.models.mlp] in pyproject.toml."""
    return MLP()


class SmallCNN(nn.Module):
    def __init__(self, classes: int = 10) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(8, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(),
            nn.AdaptiveAvgPool2d(1),
        )
        self.classifier = nn.Linear(16, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x).flatten(1))


def make_cnn() -> dict:
    """A plain dict spec: the model, a real loss and the dataset it trains on."""
    return {
        "model": SmallCNN(),
        "loss": nn.CrossEntropyLoss(),
        "dataset": DigitsLike(size=24),
        "num_classes": 10,
        "batch_size": 4,
    }


class TabularModel(nn.Module):
    """Dict inputs (numeric features + a categorical id), dict output."""

    def __init__(self, numeric: int = 6, categories: int = 12, classes: int = 3) -> None:
        super().__init__()
        self.embed = nn.Embedding(categories, 4)
        self.mlp = nn.Sequential(nn.Linear(numeric + 4, 16), nn.GELU())
        self.logits = nn.Linear(16, classes)
        self.score = nn.Linear(16, 1)

    def forward(self, numeric: torch.Tensor, category: torch.Tensor) -> dict[str, torch.Tensor]:
        h = self.mlp(torch.cat([numeric, self.embed(category)], dim=-1))
        return {"logits": self.logits(h), "score": self.score(h).squeeze(-1)}


def make_tabular() -> dict:
    def inputs(batch_size: int) -> dict[str, torch.Tensor]:
        return {
            "numeric": torch.randn(batch_size, 6),
            "category": torch.randint(0, 12, (batch_size,)),
        }

    return {"model": TabularModel(), "inputs": inputs}
