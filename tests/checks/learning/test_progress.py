"""learning.progress: with the user's loss, optimizer and data the model beats the best
constant prediction on held-out samples (slow learners get more steps);
a stuck model warns naming the baseline and the likely cause; a memoriser passes."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from tests.fixtures.corpus.learning import (
    pima_labels,
    pima_plain_sgd,
    pima_sgd,
    sine_gru_reads,
    xor_sigmoid,
)
from tests.helpers import assert_status, verdict
from torchvet.results import Status

CHECK = "learning.progress"


def test_a_healthy_model_beats_the_baseline() -> None:
    result = verdict(lambda: pima_labels(False), CHECK)
    assert_status(result, Status.PASSED, "held-out loss", "below the constant baseline",
                  "the positive rate")
    assert "held-out loss" in result.data["curves"]


def test_labels_shuffled_apart_from_their_inputs_warn() -> None:
    assert_status(verdict(lambda: pima_labels(True), CHECK), Status.WARNED, "baseline")


def test_a_head_reading_the_wrong_step_is_stuck_at_the_mean() -> None:
    assert_status(verdict(lambda: sine_gru_reads(0), CHECK), Status.WARNED,
                  "no better than the constant baseline (the mean target")
    assert_status(verdict(lambda: sine_gru_reads(-1), CHECK), Status.PASSED)


def test_a_stuck_model_names_the_likely_cause() -> None:
    assert_status(verdict(lambda: pima_sgd(1e-7), CHECK), Status.WARNED,
                  "likely cause (learning.learning_rate)", "barely moves the weights")


def test_slow_learners_get_their_steps() -> None:
    """XOR through sigmoids sits on a plateau for ~250 steps; plain SGD crawls down."""
    assert_status(verdict(xor_sigmoid, CHECK), Status.PASSED)
    assert_status(verdict(pima_plain_sgd, CHECK), Status.PASSED)


def test_without_a_dataset_the_loss_must_move_off_its_init() -> None:
    def factory(lr: float) -> Any:
        return lambda: {"model": nn.Linear(4, 2), "inputs": lambda b: torch.randn(b, 4),
                        "loss": nn.CrossEntropyLoss(),
                        "optimizer": lambda p: torch.optim.SGD(p, lr=lr)}

    assert_status(verdict(factory(0.1), CHECK), Status.PASSED, "moves off its init")
    assert_status(verdict(factory(1e-9), CHECK), Status.WARNED, "does not move off its init")


def _with_inputs(spec: dict[str, Any]) -> dict[str, Any]:
    """The dataset's first rows also declared as explicit ``inputs`` (as most real specs
    do: inputs for the quick checks, the dataset for learning)."""
    x, _ = spec["dataset"].tensors
    return {**spec, "inputs": lambda b: x[:b].clone()}


def test_a_dataset_next_to_explicit_inputs_is_judged_against_the_baseline() -> None:
    result = verdict(lambda: _with_inputs(pima_labels(False)), CHECK)
    assert_status(result, Status.PASSED, "held-out loss", "below the constant baseline")
    assert_status(verdict(lambda: _with_inputs(pima_labels(True)), CHECK), Status.WARNED,
                  "no better than the constant baseline")
