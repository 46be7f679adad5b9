"""checks.causes.side_effects: what an eval forward changes besides its output — the
caller's input (forward.input_mutation), the model's own state (the cause
forward.determinism names) — and the two-pass comparison the comparison checks defer to."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from tests.helpers import assert_status, assert_where, verdict, vet
from torchvet.results import Status

HERE = Path(__file__)
COUNTER = {"calls": 0}


class Normaliser(nn.Module):
    def __init__(self, inplace: bool) -> None:
        super().__init__()
        self.fc = nn.Linear(4, 3)
        self.inplace = inplace

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.inplace:
            x[:, 0] = 0.0  # culprit: an indexed write into the input
        else:
            x = torch.cat([torch.zeros_like(x[:, :1]), x[:, 1:]], dim=1)
        return self.fc(x)


def test_an_indexed_write_into_the_input_is_named_at_its_line() -> None:
    result = verdict(lambda: Normaliser(True), "forward.input_mutation")
    assert_status(result, Status.FAILED, "changes its input args[0] in place",
                  "an indexed assignment (x[...] = ...) writes into the caller's args[0]")
    assert_where(result, "# culprit: an indexed write", HERE)
    assert_status(verdict(lambda: Normaliser(False), "forward.input_mutation"), Status.PASSED,
                  "leaves its 1 input tensor(s) unchanged")


def test_a_model_that_mutates_its_input_is_one_failure_not_a_cascade() -> None:
    """Every check gets its own copy of the inputs: determinism and batch independence
    do not see the damage the first forward did."""
    results = vet(lambda: Normaliser(True), ["forward.input_mutation", "forward.determinism",
                                             "forward.batch_independence"])
    assert_status(results["forward.input_mutation"], Status.FAILED)
    assert_status(results["forward.determinism"], Status.PASSED)
    assert_status(results["forward.batch_independence"], Status.PASSED)


class Annealed(nn.Module):
    """A temperature annealed in forward (the bug), or by the training loop (healthy)."""

    def __init__(self, in_forward: bool) -> None:
        super().__init__()
        self.fc = nn.Linear(4, 3)
        self.temperature = 2.0
        self.in_forward = in_forward
        self.last_logits: torch.Tensor | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.in_forward:
            self.temperature = self.temperature * 0.9  # culprit: annealed on every call
        logits = self.fc(x) / self.temperature
        self.last_logits = logits.detach()  # kept for inspection: changes, harmlessly
        return logits


def test_an_attribute_the_forward_changes_is_named_as_the_cause() -> None:
    result = verdict(lambda: Annealed(True), "forward.determinism")
    assert_status(result, Status.FAILED, "self.temperature (a Python attribute:",
                  "on every call and the next call reads it")
    assert "dropout" not in result.message and "last_logits" not in result.message
    assert_where(result, "# culprit: annealed on every call", HERE)


def test_state_the_next_call_does_not_read_is_not_a_cause() -> None:
    assert_status(verdict(lambda: Annealed(False), "forward.determinism"), Status.PASSED)


class Recurrent(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.cell = nn.GRUCell(4, 6)
        self.head = nn.Linear(6, 2)
        self.state: torch.Tensor | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.state is None or self.state.shape[0] != x.shape[0]:
            self.state = x.new_zeros(x.shape[0], 6)
        self.state = self.cell(x, self.state).detach()  # culprit: carried to the next call
        return self.head(self.state)


def test_a_tensor_carried_between_calls_is_named_with_its_fix() -> None:
    result = verdict(lambda: {"model": Recurrent(), "inputs": lambda b: torch.randn(b, 4)},
                     "forward.determinism")
    assert_status(result, Status.FAILED, "self.state (a tensor kept as a plain attribute)")
    assert_where(result, "# culprit: carried to the next call", HERE)


class ReadsAGlobal(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(4, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        COUNTER["calls"] += 1
        return self.fc(x) * COUNTER["calls"]


def test_without_evidence_no_cause_is_invented() -> None:
    result = verdict(ReadsAGlobal, "forward.determinism")
    assert_status(result, Status.FAILED, "with no random op and no change to the model's state",
                  "outside the model")
    assert "dropout" not in result.message


class EvalDropout(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(4, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.dropout(self.fc(x), 0.5)


def test_comparison_checks_defer_to_determinism() -> None:
    """Noise is not a dependence on batch mates: batch_independence skips, naming the
    check that owns the verdict."""
    results = vet(EvalDropout, ["forward.determinism", "forward.batch_independence"])
    assert_status(results["forward.determinism"], Status.FAILED, "dropout() ran with training=True")
    assert_status(results["forward.batch_independence"], Status.SKIPPED,
                  "see forward.determinism")


def test_determinism_is_judged_the_same_whichever_check_asks_first() -> None:
    alone = vet(lambda: Annealed(True), ["forward.determinism"])
    after: dict[str, Any] = vet(lambda: Annealed(True), ["forward.batch_independence",
                                                          "forward.determinism"])
    assert alone["forward.determinism"].message == after["forward.determinism"].message
