"""A synthetic image dataset (no download) and a CNN that trains on it."""

from __future__ import annotations

import torch
from torch import nn
from torch.utils.data import Dataset

from .blocks import conv_bn


class Shapes(Dataset):
    """``size`` 3x32x32 images of noisy bars whose orientation is the label (4 classes)."""

    def __init__(self, size: int = 256, classes: int = 4) -> None:
        generator = torch.Generator().manual_seed(7)
        self.labels = torch.randint(0, classes, (size,), generator=generator)
        self.noise = torch.rand(size, 3, 32, 32, generator=generator) * 0.2

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        if not 0 <= index < len(self):
            raise IndexError(index)
        label = int(self.labels[index])
        image = self.noise[index].clone()
        if label == 0:
            image[:, 12:20, :] += 0.8
        elif label == 1:
            image[:, :, 12:20] += 0.8
        elif label == 2:
            image += torch.eye(32).repeat(3, 1, 1) * 0.8
        else:
            image += torch.eye(32).flip(1).repeat(3, 1, 1) * 0.8
        return image, self.labels[index]


def make_shapes() -> dict:
    return {"dataset": Shapes(), "batch_size": 16, "num_classes": 4}


class ShapesCNN(nn.Module):
    def __init__(self, classes: int = 4) -> None:
        super().__init__()
        self.features = nn.Sequential(conv_bn(3, 16, stride=2), conv_bn(16, 32, stride=2),
                                      nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.head = nn.Linear(32, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


def make_cnn_shapes() -> dict:
    """A model with the dataset it trains on: the data checks run on it too."""
    return {
        "model": ShapesCNN(),
        "loss": nn.CrossEntropyLoss(),
        "dataset": Shapes(size=64),
        "batch_size": 8,
        "num_classes": 4,
    }
