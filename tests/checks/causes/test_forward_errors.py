"""checks.causes.forward_errors: forward.runs (and data.model_fit) name the cause behind
torch's error — at the culprit's line, not where the bad tensor finally broke — and
forward.warnings reports warnings raised at lines of the project."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import TensorDataset

from tests.helpers import assert_status, assert_where, verdict
from torchvet.results import Status

HERE = Path(__file__)


class Images(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)  # culprit: the conv fed channels last
        self.head = nn.Linear(4, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.conv(x).mean((2, 3)))


def test_channels_last_images_are_named_with_the_permute() -> None:
    result = verdict(lambda: {"model": Images(), "inputs": torch.rand(2, 8, 8, 3)},
                     "forward.runs")
    assert_status(result, Status.FAILED, "expected input[2, 8, 8, 3] to have 3 channels",
                  "self.conv (Conv2d wants (N, C, ...) with C = 3", "x.permute(0, 3, 1, 2)")
    assert_where(result, "# culprit: the conv fed channels last", HERE)
    assert_status(verdict(lambda: {"model": Images(), "inputs": torch.rand(2, 3, 8, 8)},
                          "forward.runs"), Status.PASSED)


def test_data_model_fit_names_the_same_cause() -> None:
    images = TensorDataset(torch.rand(6, 8, 8, 3), torch.randint(0, 2, (6,)))
    result = verdict(lambda: {"model": Images(), "dataset": images, "batch_size": 2},
                     "data.model_fit")
    assert_status(result, Status.FAILED, "does not fit the model", "image.permute(2, 0, 1)")


class Tokens(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Embedding(10, 4)  # culprit: ten ids, 0..9
        self.head = nn.Linear(4, 2)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.head(self.embed(ids).mean(1))


def test_ids_beyond_the_embedding_name_num_embeddings() -> None:
    result = verdict(lambda: {"model": Tokens(), "inputs": lambda b: torch.full((b, 3), 10)},
                     "forward.runs")
    assert_status(result, Status.FAILED, "index out of range in self",
                  "gets ids up to 10, but its num_embeddings is 10")
    assert_where(result, "# culprit: ten ids", HERE)


class Flattens(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(12, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.flatten(x))  # culprit: flattens the batch too


def test_a_flatten_that_folds_the_batch_is_named() -> None:
    result = verdict(lambda: {"model": Flattens(), "inputs": torch.randn(2, 3, 4)},
                     "forward.runs")
    assert_status(result, Status.FAILED, "flatten() turned (2, 3, 4) into (24,)",
                  "torch.flatten(x, 1)")
    assert_where(result, "# culprit: flattens the batch", HERE)


class Positional(nn.Module):
    table: torch.Tensor

    def __init__(self) -> None:
        super().__init__()
        angles = np.arange(12).reshape(3, 4) / 10.0
        self.register_buffer("table", torch.from_numpy(np.sin(angles)))  # culprit: float64
        self.fc = nn.Linear(4, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x + self.table)


def test_a_float64_buffer_is_named() -> None:
    result = verdict(lambda: {"model": Positional(), "inputs": torch.randn(2, 3, 4)},
                     "forward.runs")
    assert_status(result, Status.FAILED, "table is float64 while the parameters are float32")
    assert_where(result, "# culprit: float64", HERE)


class ReversedKeys(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.qk = nn.Linear(4, 8)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q, k = self.qk(x).chunk(2, dim=-1)
        kt = k.T  # culprit: reverses every dim
        return (q @ kt / math.sqrt(4)).softmax(-1)


def test_a_warning_torch_raised_before_the_crash_is_the_cause() -> None:
    spec: dict[str, Any] = {"model": ReversedKeys(), "inputs": torch.randn(2, 5, 4)}
    result = verdict(lambda: spec, "forward.runs")
    assert_status(result, Status.FAILED, "torch warned first", "to reverse their shape")
    assert_where(result, "# culprit: reverses every dim", HERE)
    warned = verdict(lambda: spec, "forward.warnings")
    assert_status(warned, Status.WARNED, "UserWarning: The use of `x.T`")
    assert_where(warned, "# culprit: reverses every dim", HERE)


def test_a_model_that_warns_nothing_passes_forward_warnings() -> None:
    assert_status(verdict(lambda: nn.Linear(4, 2), "forward.warnings"), Status.PASSED)
