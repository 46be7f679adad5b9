"""checks.causes.batch_mixing: forward.batch_independence looks at the first, a middle and
the last sample, names the module that reads the batch as time or mixes the heads'
masks, and does not read NaN gradients as a dependence."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from tests.helpers import assert_status, assert_where, verdict
from torchvet.results import Status

HERE = Path(__file__)
CHECK = "forward.batch_independence"


class SequenceModel(nn.Module):
    def __init__(self, batch_first: bool) -> None:
        super().__init__()
        self.rnn = nn.GRU(4, 8, batch_first=batch_first)  # culprit: batch_first
        self.head = nn.Linear(8, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out, _ = self.rnn(x)
        return self.head(out[:, -1])


def test_a_recurrence_along_the_batch_is_caught_and_named() -> None:
    """Sample 0 depends on nothing when the batch is read as time: only the later ones
    show it, and the message says batch_first."""
    result = verdict(lambda: {"model": SequenceModel(False),
                              "inputs": lambda b: torch.randn(b, 5, 4)}, CHECK)
    assert_status(result, Status.FAILED, "GRU has batch_first=False",
                  "runs its recurrence along the batch", "pass batch_first=True")
    assert_where(result, "# culprit: batch_first", HERE)
    healthy = verdict(lambda: {"model": SequenceModel(True),
                               "inputs": lambda b: torch.randn(b, 5, 4)}, CHECK)
    assert_status(healthy, Status.PASSED, "samples 0, 1, 2 of a batch of 3")


class RunningSum(nn.Module):
    """Each sample adds the ones before it: sample 0 alone looks independent."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(3, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x).cumsum(0)  # culprit: a running sum over the batch


def test_the_last_sample_is_checked_too() -> None:
    result = verdict(RunningSum, CHECK)
    assert_status(result, Status.FAILED, "moves both when sample", "cumsum(dim=0) reduces across")
    assert_where(result, "# culprit: a running sum", HERE)


class PaddedAttention(nn.Module):
    def __init__(self, interleave: bool) -> None:
        super().__init__()
        self.attn = nn.MultiheadAttention(8, 2, batch_first=True)
        self.interleave = interleave

    def forward(self, x: torch.Tensor, padding: torch.Tensor) -> torch.Tensor:
        mask = padding[:, None, :].expand(-1, x.shape[1], -1)
        mask = mask.repeat_interleave(2, dim=0) if self.interleave else mask.repeat(2, 1, 1)
        h, _ = self.attn(x, x, x, attn_mask=mask)  # culprit: the mask goes in here
        return h[:, 0]


def padded(batch: int) -> tuple[torch.Tensor, torch.Tensor]:
    lengths = torch.tensor([4 - (k % 3) for k in range(batch)])
    return torch.randn(batch, 4, 8), torch.arange(4)[None, :] >= lengths[:, None]


def test_an_attention_mask_in_head_batch_order_is_named() -> None:
    result = verdict(lambda: {"model": PaddedAttention(False), "inputs": padded}, CHECK)
    assert_status(result, Status.FAILED, "laid out (head, batch)", "repeat_interleave")
    assert_where(result, "# culprit: the mask goes in here", HERE)
    assert_status(verdict(lambda: {"model": PaddedAttention(True), "inputs": padded}, CHECK),
                  Status.PASSED)


class SafeSqrt(nn.Module):
    """torch.where around a sqrt: a NaN gradient, but no dependence between samples."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(4, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.fc(x)
        return torch.where(h > 0, h.sqrt(), torch.zeros_like(h))


def test_a_nan_in_the_input_gradient_is_not_a_dependence() -> None:
    assert_status(verdict(SafeSqrt, CHECK), Status.PASSED)


class NanRows(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(4, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.log(self.fc(x) - 10.0)


def test_non_finite_outputs_defer_to_forward_finite() -> None:
    assert_status(verdict(NanRows, CHECK), Status.SKIPPED, "see forward.finite")
