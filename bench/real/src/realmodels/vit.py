"""ViT-B/16 (86M parameters): 16x16 patches of a 224x224 image, a class token, 12
pre-norm encoder layers of width 768, 1000 classes; plain torch."""

from __future__ import annotations

import torch
from torch import nn


class ViT(nn.Module):
    def __init__(self, image: int = 224, patch: int = 16, dim: int = 768, depth: int = 12,
                 heads: int = 12, classes: int = 1000) -> None:
        super().__init__()
        self.patch = nn.Conv2d(3, dim, patch, stride=patch)
        self.cls = nn.Parameter(torch.zeros(1, 1, dim))
        self.position = nn.Parameter(torch.randn(1, (image // patch) ** 2 + 1, dim) * 0.02)
        layer = nn.TransformerEncoderLayer(dim, heads, 4 * dim, dropout=0.0, batch_first=True,
                                           norm_first=True, activation="gelu")
        self.encoder = nn.TransformerEncoder(layer, depth, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.patch(x).flatten(2).transpose(1, 2)
        h = torch.cat([self.cls.expand(h.shape[0], -1, -1), h], dim=1) + self.position
        return self.head(self.norm(self.encoder(h))[:, 0])


def make_vit_b16() -> dict:
    return {
        "model": ViT(),
        "inputs": lambda b: torch.randn(b, 3, 224, 224),
        "loss": nn.CrossEntropyLoss(),
        "num_classes": 1000,
    }
