"""learning.output_vs_loss: the last activation fits the loss (the one home of the old
forward.probabilities): each mismatch is flagged naming the activation and the loss, and
the matching pairs pass."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from tests.fixtures import models_buggy as buggy
from tests.fixtures.corpus import learning_models as lm
from tests.fixtures.corpus.learning import (
    bars10_head,
    iris_head,
    quadratic_l1,
    quadratic_regressor,
    sine_regressor,
    titanic_head,
)
from tests.helpers import assert_status, line_in, verdict, vet
from torchvet.results import Status

CHECK = "learning.output_vs_loss"


def test_probabilities_into_cross_entropy_warn_at_the_softmax() -> None:
    result = verdict(buggy.probabilities_into_ce, CHECK)
    assert_status(result, Status.WARNED, "CrossEntropyLoss is fed the softmax output",
                  "summing to 1", "return raw logits")
    assert result.line == line_in(Path(buggy.__file__), "return torch.softmax(")


def test_sigmoid_into_bce_with_logits_warns() -> None:
    assert_status(verdict(buggy.sigmoid_into_bce_with_logits, CHECK), Status.WARNED,
                  "BCEWithLogitsLoss is fed the sigmoid output", "applies a sigmoid itself")


def test_corpus_pairs_probabilities_into_logit_losses() -> None:
    assert_status(verdict(lambda: bars10_head(nn.Sigmoid(), nn.CrossEntropyLoss()), CHECK),
                  Status.WARNED, "sigmoid output of 1.3 (sigmoid)")
    assert_status(verdict(lambda: bars10_head(nn.Softmax(dim=1), nn.CrossEntropyLoss()),
                          CHECK), Status.WARNED, "softmax output")
    assert_status(verdict(lambda: bars10_head(None, nn.CrossEntropyLoss()), CHECK),
                  Status.PASSED, "the output fits CrossEntropyLoss")


def test_sigmoid_into_nll_fails_and_log_softmax_passes() -> None:
    assert_status(verdict(lambda: iris_head(nn.Sigmoid(), nn.NLLLoss()), CHECK),
                  Status.FAILED, "NLLLoss is fed the sigmoid output", "no floor")
    assert_status(verdict(lambda: iris_head(nn.LogSoftmax(dim=1), nn.NLLLoss()), CHECK),
                  Status.PASSED)


def test_a_softmax_over_one_unit_fails_and_a_sigmoid_passes() -> None:
    assert_status(verdict(lambda: titanic_head(nn.Softmax(dim=1), nn.BCELoss()), CHECK),
                  Status.FAILED, "softmax over dim 1, which has size 1", "always 1")
    assert_status(verdict(lambda: titanic_head(nn.Sigmoid(), nn.BCELoss()), CHECK),
                  Status.PASSED, "BCELoss")


def test_what_is_wrong_with_the_loss_itself_is_left_to_loss_sanity() -> None:
    """One class, a target that broadcasts, NLL fed raw scores: training.loss_sanity
    fails them (checks.shared.loss_capture is their one home); this check points there, and
    training.overfit still cites them as the mechanism of a plateau."""
    def one_class() -> dict[str, Any]:
        return {"model": nn.Linear(4, 1), "inputs": lambda b: torch.randn(b, 4),
                "target": lambda b: torch.zeros(b, dtype=torch.long),
                "loss": nn.CrossEntropyLoss()}

    for factory, fragment in ((one_class, "one class"),
                              (lambda: sine_regressor(True), "broadcast to (32, 32)"),
                              (lambda: quadratic_l1(True), "broadcast"),
                              (lambda: iris_head(None, nn.NLLLoss()), "not log-probabilities")):
        results = vet(factory, [CHECK, "training.loss_sanity"])
        assert_status(results["training.loss_sanity"], Status.FAILED, fragment)
        assert_status(results[CHECK], Status.SKIPPED, "see training.loss_sanity")
    assert_status(verdict(lambda: sine_regressor(False), CHECK), Status.PASSED)


def test_a_sigmoid_output_cannot_reach_targets_in_the_hundreds() -> None:
    assert_status(verdict(lambda: quadratic_regressor(nn.Sigmoid()), CHECK), Status.FAILED,
                  "squashes the output into [0, 1]", "100% of the MSELoss targets",
                  "cannot reach them")
    assert_status(verdict(lambda: quadratic_regressor(None), CHECK), Status.PASSED)


def test_relu_logits_warn() -> None:
    def factory() -> dict[str, Any]:
        return {"model": lm.mlp(4, 16, 3, out=nn.ReLU()), "dataset": lm.iris(),
                "loss": nn.CrossEntropyLoss()}

    assert_status(verdict(factory, CHECK), Status.WARNED, "relu output", "cannot go below 0")


class Attention(nn.Module):
    """An attention softmax freed before the logits: a reused id must not mislead."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(8, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weights = torch.softmax(x @ x.T, dim=-1)
        mixed = weights @ x
        del weights
        return self.fc(mixed)


def test_a_freed_softmax_does_not_make_later_logits_probabilities() -> None:
    def factory() -> dict[str, Any]:
        return {"model": Attention(), "inputs": lambda b: torch.randn(b, 8),
                "loss": nn.CrossEntropyLoss()}

    assert_status(verdict(factory, CHECK), Status.PASSED)


def test_a_custom_loss_without_torch_losses_skips() -> None:
    def factory() -> dict[str, Any]:
        return {"model": nn.Linear(4, 2), "inputs": lambda b: torch.randn(b, 4),
                "loss": lambda out: out.pow(2).mean()}

    assert_status(verdict(factory, CHECK), Status.SKIPPED, "calls no torch loss function")


def test_no_loss_skips_naming_it() -> None:
    assert_status(verdict(lambda: nn.Linear(4, 2), CHECK), Status.SKIPPED,
                  "no loss or step declared")

