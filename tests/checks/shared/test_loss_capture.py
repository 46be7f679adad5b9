"""checks.shared.loss_capture: training.loss_sanity — a loss fed the wrong shape or kind of
output, one that cannot reach or stay above its floor, one that ignores outputs the
model trains, and (warns) one that sums over the batch; healthy losses of the same kinds
pass."""

from __future__ import annotations

from typing import Any

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from tests.helpers import assert_status, verdict
from torchvet.results import Status

CHECK = "training.loss_sanity"


def regression(target_shape: str) -> dict[str, Any]:
    target = (lambda b: torch.randn(b, 1)) if target_shape == "(B, 1)" else (
        lambda b: torch.randn(b))
    return {"model": nn.Linear(3, 1), "inputs": lambda b: torch.randn(b, 3),
            "target": target, "loss": nn.MSELoss(), "batch_size": 4}


def test_a_target_that_broadcasts_against_the_output_fails() -> None:
    result = verdict(lambda: regression("(B,)"), CHECK)
    assert_status(result, Status.FAILED, "mse_loss compares the output (4, 1) with the target "
                  "(4,): they broadcast to (4, 4)", "target.view_as(output)")
    assert_status(verdict(lambda: regression("(B, 1)"), CHECK), Status.PASSED)


def classifier(outputs: int, loss: Any, **extra: Any) -> dict[str, Any]:
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, outputs), *extra.pop(
        "tail", []))
    return {"model": model, "inputs": lambda b: torch.randn(b, 4),
            "target": extra.pop("target", lambda b: torch.randint(0, max(outputs, 2), (b,))),
            "loss": loss, "batch_size": 4, **extra}


def test_cross_entropy_over_one_class_fails() -> None:
    one = classifier(1, nn.CrossEntropyLoss(), target=lambda b: torch.rand(b, 1).round())
    assert_status(verdict(lambda: one, CHECK), Status.FAILED, "cross_entropy gets (4, 1): one "
                  "class", "BCEWithLogitsLoss")
    two = classifier(1, nn.BCEWithLogitsLoss(), target=lambda b: torch.rand(b, 1).round())
    assert_status(verdict(lambda: two, CHECK), Status.PASSED)


def test_nll_on_raw_scores_fails_and_on_log_probabilities_passes() -> None:
    raw = classifier(3, nn.NLLLoss())
    assert_status(verdict(lambda: raw, CHECK), Status.FAILED, "not log-probabilities",
                  "negative without bound", "apply log_softmax first")
    logged = classifier(3, nn.NLLLoss(), tail=[nn.LogSoftmax(dim=1)])
    assert_status(verdict(lambda: logged, CHECK), Status.PASSED)


def test_a_floored_loss_measured_below_zero_fails() -> None:
    def soft_ce(out: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(out, target)

    negative = classifier(3, soft_ce, target=lambda b: -torch.ones(b, 3))
    assert_status(verdict(lambda: negative, CHECK), Status.FAILED, "cross_entropy returned",
                  "a negative value")


class TwoHeads(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.trunk = nn.Linear(4, 8)
        self.main = nn.Linear(8, 3)
        self.aux = nn.Linear(8, 3)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = torch.relu(self.trunk(x))
        return self.main(h), self.aux(h)


def heads(use_aux: bool, **extra: Any) -> dict[str, Any]:
    def loss(out: tuple[torch.Tensor, torch.Tensor], y: torch.Tensor) -> torch.Tensor:
        main = F.cross_entropy(out[0], y)
        return main + 0.3 * F.cross_entropy(out[1], y) if use_aux else main

    return {"model": TwoHeads(), "inputs": lambda b: torch.randn(b, 4),
            "target": lambda b: torch.randint(0, 3, (b,)), "loss": loss, **extra}


def test_parameters_that_only_feed_an_ignored_output_fail() -> None:
    result = verdict(lambda: heads(False), CHECK)
    assert_status(result, Status.FAILED, "the loss ignores out[1]", "aux.weight, aux.bias",
                  'declare unused=["aux.*"]')
    assert_status(verdict(lambda: heads(True), CHECK), Status.PASSED)
    declared = verdict(lambda: heads(False, unused=["aux.*"]), CHECK)
    assert_status(declared, Status.PASSED)


class WithFeatures(nn.Module):
    """Returns its features beside the logits (for retrieval): the loss reads only the
    logits, and every parameter still learns through them."""

    def __init__(self) -> None:
        super().__init__()
        self.trunk = nn.Linear(4, 8)
        self.head = nn.Linear(8, 3)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = torch.relu(self.trunk(x))
        return self.head(h), h


def test_an_extra_output_that_trains_nothing_of_its_own_is_fine() -> None:
    spec = {"model": WithFeatures(), "inputs": lambda b: torch.randn(b, 4),
            "target": lambda b: torch.randint(0, 3, (b,)),
            "loss": lambda out, y: F.cross_entropy(out[0], y)}
    assert_status(verdict(lambda: spec, CHECK), Status.PASSED)


@pytest.mark.parametrize(("reduction", "status"), [("sum", Status.WARNED),
                                                   ("mean", Status.PASSED)])
def test_a_loss_summed_over_the_batch_warns(reduction: str, status: Status) -> None:
    spec = classifier(3, nn.CrossEntropyLoss(reduction=reduction))
    result = verdict(lambda: spec, CHECK)
    assert_status(result, status, *(("reduction='sum'", "doubles when the batch is given "
                                     "twice") if status is Status.WARNED else ()))


def test_a_pairwise_loss_is_neither_a_sum_nor_a_mean() -> None:
    def contrastive(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        d = torch.cdist(out, out)
        same = (y[:, None] == y[None]).float()
        return (same * d.pow(2) + (1 - same) * F.relu(1 - d).pow(2)).mean()

    assert_status(verdict(lambda: classifier(3, contrastive), CHECK), Status.PASSED)


def test_without_a_declared_loss_it_skips() -> None:
    assert_status(verdict(lambda: nn.Linear(4, 2), CHECK), Status.SKIPPED,
                  "no loss or step declared")
