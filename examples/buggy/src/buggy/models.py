"""Each factory returns a model with exactly one classic bug (marked ``# BUG``)."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn


class UnusedLayer(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.encoder = nn.Linear(16, 32)
        self.projection = nn.Linear(32, 32)  # BUG: created but never called
        self.head = nn.Linear(32, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(torch.relu(self.encoder(x)))


def unused_layer() -> nn.Module:
    return UnusedLayer()


class DetachedBranch(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.backbone = nn.Sequential(nn.Linear(16, 32), nn.ReLU())
        self.head = nn.Linear(32, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = self.backbone(x).detach()  # BUG: the backbone never learns
        return self.head(features)


def detached_branch() -> nn.Module:
    return DetachedBranch()


class NaNOutput(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(16, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.log(self.fc(x))  # BUG: log of raw activations (negative -> NaN)


def nan_output() -> nn.Module:
    return NaNOutput()


class Float64Creep(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(16, 4)
        self.class_weights = np.linspace(0.5, 2.0, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x) * torch.from_numpy(self.class_weights)  # BUG: float64 constant


def float64_creep() -> nn.Module:
    return Float64Creep()


class SoftmaxOverBatch(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(16, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.fc(x), dim=0)  # BUG: normalises across samples


def softmax_over_batch() -> nn.Module:
    return SoftmaxOverBatch()


class DropoutInEval(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc1 = nn.Linear(16, 32)
        self.fc2 = nn.Linear(32, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.dropout(torch.relu(self.fc1(x)), p=0.3)  # BUG: missing training=self.training
        return self.fc2(h)


def dropout_in_eval() -> nn.Module:
    return DropoutInEval()


class LayersInAList(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Linear(16, 32)
        self.blocks = [nn.Linear(32, 32) for _ in range(2)]  # BUG: use nn.ModuleList
        self.head = nn.Linear(32, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.stem(x))
        for block in self.blocks:
            h = torch.relu(block(h))
        return self.head(h)


def layers_in_a_list() -> nn.Module:
    return LayersInAList()


class MaskLeftOnCPU(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(16, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        keep = torch.ones(x.shape[-1])  # BUG: no device=x.device
        return self.fc(x * keep)


def mask_left_on_cpu() -> nn.Module:
    return MaskLeftOnCPU()
