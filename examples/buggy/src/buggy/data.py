"""A dataset whose labels run 1..C instead of 0..C-1."""

from __future__ import annotations

import torch
from torch.utils.data import Dataset


class OneBasedLabels(Dataset):
    def __init__(self, size: int = 20, classes: int = 4) -> None:
        generator = torch.Generator().manual_seed(0)
        self.features = torch.randn(size, 16, generator=generator)
        self.labels = torch.randint(0, classes, (size,), generator=generator) + 1  # BUG

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        if not 0 <= index < len(self):
            raise IndexError(index)
        return self.features[index], self.labels[index]


def one_based_labels() -> dict:
    return {"dataset": OneBasedLabels(), "batch_size": 4, "num_classes": 4}
