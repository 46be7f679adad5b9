"""A deterministic, digit-like image dataset (no download)."""

from __future__ import annotations

import torch
from torch.utils.data import Dataset


class DigitsLike(Dataset):
    """``size`` 1x8x8 images with labels 0..9, generated from a fixed seed."""

    def __init__(self, size: int = 30, classes: int = 10) -> None:
        generator = torch.Generator().manual_seed(1234)
        self.images = torch.rand(size, 1, 8, 8, generator=generator)
        self.labels = torch.randint(0, classes, (size,), generator=generator)

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        if not 0 <= index < len(self):
            raise IndexError(index)
        return self.images[index], self.labels[index]


def make_digits() -> dict:
    return {"dataset": DigitsLike(), "batch_size": 8, "num_classes": 10}
