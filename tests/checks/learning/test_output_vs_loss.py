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



# ------------------------------------------------- hand-written losses, judged by behaviour

def _renormalised_cce(out: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Keras' categorical cross-entropy on probabilities: renormalise, clip, -y log p."""
    p = (out / out.sum(-1, keepdim=True)).clamp(1e-7, 1 - 1e-7)
    return -(target * torch.log(p)).sum(-1).mean()


def _classifier(last: nn.Module, loss: Any) -> Any:
    def factory() -> dict[str, Any]:
        torch.manual_seed(0)
        x = torch.randn(96, 4)
        y = torch.nn.functional.one_hot((x[:, 0] > 0).long() + (x[:, 1] > 0).long(), 3)
        model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3), last)
        return {"model": model, "inputs": lambda b: x[:b].clone(),
                "target": lambda b: y[:b].float(), "loss": loss,
                "optimizer": lambda p: torch.optim.Adam(p, lr=1e-3)}
    return factory


def test_a_relu_output_under_a_renormalising_loss_fails() -> None:
    result = verdict(_classifier(nn.ReLU(), _renormalised_cce), CHECK)
    assert_status(result, Status.FAILED, "3 (relu) can output an output row of all 0s",
                  "_renormalised_cce", "NaN or infinite")


def test_sigmoid_outputs_under_a_renormalising_loss_warn() -> None:
    result = verdict(_classifier(nn.Sigmoid(), _renormalised_cce), CHECK)
    assert_status(result, Status.WARNED, "3 (sigmoid) squashes each of the 3 outputs",
                  "unchanged when a row is scaled", "softmax")


def test_a_softmax_under_a_renormalising_loss_passes() -> None:
    assert_status(verdict(_classifier(nn.Softmax(dim=-1), _renormalised_cce), CHECK),
                  Status.PASSED, "the output fits _renormalised_cce")


def test_a_loss_that_rewards_the_wrong_class_fails() -> None:
    def flipped(out: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return (target * torch.log(out.clamp_min(1e-7))).sum(-1).mean()  # sign dropped

    result = verdict(_classifier(nn.Softmax(dim=-1), flipped), CHECK)
    assert_status(result, Status.FAILED, "does not reward the right class")


def _regressor(last: nn.Module, shift: float) -> Any:
    def factory() -> dict[str, Any]:
        torch.manual_seed(0)
        x = torch.randn(64, 2)
        y = x.sum(1, keepdim=True) * 0.5 + shift
        model = nn.Sequential(nn.Linear(2, 4), nn.ReLU(), nn.Linear(4, 1), last)
        return {"model": model, "inputs": lambda b: x[:b].clone(),
                "target": lambda b: y[:b].clone(), "loss": nn.MSELoss(),
                "optimizer": lambda p: torch.optim.SGD(p, lr=0.01)}
    return factory


def test_a_relu_on_a_signed_regression_output_warns() -> None:
    # shifted so that about a fifth of the targets are negative (not the 50 % of a failure)
    result = verdict(_regressor(nn.ReLU(), 0.6), CHECK)
    assert_status(result, Status.WARNED, "3 (relu) ends a regression whose targets are signed",
                  "drop the output ReLU")


def test_a_linear_regression_output_or_positive_targets_pass() -> None:
    assert_status(verdict(_regressor(nn.Identity(), 0.6), CHECK), Status.PASSED)
    assert_status(verdict(_regressor(nn.ReLU(), 5.0), CHECK), Status.PASSED)
