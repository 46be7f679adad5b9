"""checks.gradient_causes (and training.loss's causes): a NaN gradient named at its op,
zero-initialised weights, a parameter replaced in forward, a torch.tensor copy, a loss
that is fine at init and broken later, a loss computed under inference_mode, the class
dim in last place — each at its line, with its healthy twin passing."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from tests.helpers import assert_status, assert_where, verdict, vet
from torchvet.results import Status

HERE = Path(__file__)
GRADIENTS = "training.gradients"


class Roots(nn.Module):
    def __init__(self, safe: bool) -> None:
        super().__init__()
        self.fc = nn.Linear(4, 4)
        self.head = nn.Linear(4, 2)
        self.safe = safe

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.fc(x)
        if self.safe:
            root = torch.where(h > 0, h, torch.ones_like(h)).sqrt()
            return self.head(torch.where(h > 0, root, torch.zeros_like(h)))
        return self.head(torch.where(h > 0, h.sqrt(), torch.zeros_like(h)))  # culprit: where


def test_a_nan_gradient_behind_torch_where_is_named() -> None:
    result = verdict(lambda: {"model": Roots(False), "inputs": lambda b: torch.randn(b, 4)},
                     GRADIENTS)
    assert_status(result, Status.FAILED, "fc.weight, fc.bias received a NaN/Inf gradient",
                  "torch.where()", "sqrt()", "0 × NaN = NaN")
    assert_where(result, "# culprit: where", HERE)
    assert_status(verdict(lambda: {"model": Roots(True), "inputs": lambda b: torch.randn(b, 4)},
                          GRADIENTS), Status.PASSED)


def pairwise(epsilon: float) -> dict[str, Any]:
    def loss(emb: torch.Tensor, _: torch.Tensor) -> torch.Tensor:
        squared = ((emb[:, None] - emb[None]) ** 2).sum(-1)
        distance = (squared + epsilon).sqrt()  # culprit: sqrt of the zero diagonal
        return (distance.pow(2) + F.relu(1.0 - distance).pow(2)).mean()

    return {"model": nn.Linear(4, 3), "inputs": lambda b: torch.randn(b, 4),
            "target": lambda b: torch.zeros(b), "loss": loss, "batch_size": 4}


def test_a_nan_gradient_is_named_at_the_op_whose_backward_makes_it() -> None:
    """The first loss is finite and its gradient NaN: training.loss passes (the loss is not
    'nan at init'), training.gradients names sqrt at its line."""
    results = vet(lambda: pairwise(0.0), ["training.loss", GRADIENTS])
    assert_status(results["training.loss"], Status.PASSED, "at init", "see training.gradients")
    result = results[GRADIENTS]
    assert_status(result, Status.FAILED, "the backward of sqrt()",
                  "turns a finite gradient into NaN/Inf", "unbounded where its input is 0")
    assert_where(result, "# culprit: sqrt of the zero diagonal", HERE)
    assert_status(verdict(lambda: pairwise(1e-8), GRADIENTS), Status.PASSED)


def zeroed(init_zero: bool) -> dict[str, Any]:
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))
    if init_zero:
        for layer in (model[0], model[2]):
            nn.init.zeros_(layer.weight)
            nn.init.zeros_(layer.bias)
    return {"model": model, "inputs": lambda b: torch.randn(b, 4)}


def test_zero_initialised_weights_are_named_as_the_cause() -> None:
    result = verdict(lambda: zeroed(True), GRADIENTS)
    assert_status(result, Status.FAILED, "0.weight, 2.weight are all zeros at init")
    assert_status(verdict(lambda: zeroed(False), GRADIENTS), Status.PASSED)


class ScaleInForward(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(4, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.scale = nn.Parameter(torch.ones(x.shape[-1]))  # culprit: a new one per call
        return self.fc(x * self.scale)


def test_a_parameter_created_in_forward_is_named() -> None:
    # the parameter exists once a forward has run (forward.runs runs first in a real run)
    results = vet(lambda: {"model": ScaleInForward(), "inputs": lambda b: torch.randn(b, 4)},
                  ["forward.runs", GRADIENTS])
    result = results[GRADIENTS]
    assert_status(result, Status.FAILED, "assigns a new nn.Parameter to self.scale on every call",
                  "create it once in __init__")
    assert_where(result, "# culprit: a new one per call", HERE)


class Rewrapped(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.encoder = nn.Linear(4, 4)
        self.head = nn.Linear(4, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.tensor(self.encoder(x))  # culprit: a copy outside the graph
        return self.head(h)


def test_a_torch_tensor_copy_is_named_as_what_detaches() -> None:
    result = verdict(Rewrapped, GRADIENTS)
    assert_status(result, Status.FAILED, "encoder.weight, encoder.bias received no gradient",
                  "torch.tensor(t)", "copies t out of the autograd graph")
    assert_where(result, "# culprit: a copy outside the graph", HERE)


class Predictor(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(4, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with torch.inference_mode():
            return self.fc(x)  # culprit: no autograd here


def test_a_forward_under_inference_mode_is_named_at_its_line() -> None:
    result = verdict(Predictor, "training.loss")
    assert_status(result, Status.FAILED, "cannot be backpropagated",
                  "torch.inference_mode() is active")
    assert_where(result, "# culprit: no autograd here", HERE)


def tagger(move_classes: bool) -> dict[str, Any]:
    def loss(out: torch.Tensor, tags: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(out.transpose(1, 2) if move_classes else out, tags)

    return {"model": nn.Linear(4, 5), "inputs": lambda b: torch.randn(b, 7, 4),
            "target": lambda b: torch.randint(0, 5, (b, 7)), "loss": loss}


def test_cross_entropy_with_the_classes_last_is_named() -> None:
    results = vet(lambda: tagger(False), ["learning.output_vs_loss", "training.loss",
                                          "training.loss_at_init"])
    assert_status(results["training.loss"], Status.FAILED, "cross_entropy wants the classes in "
                  "dim 1", "output.transpose(1, 2)")
    for dependent in ("learning.output_vs_loss", "training.loss_at_init"):
        assert_status(results[dependent], Status.SKIPPED, "see training.loss")
    assert_status(verdict(lambda: tagger(True), "training.loss"), Status.PASSED)


class Broken(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(4, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x[:, :3])


def test_a_forward_that_fails_everywhere_is_forward_runs_alone() -> None:
    results = vet(lambda: {"model": Broken(), "inputs": torch.randn(2, 4)},
                  ["forward.runs", "training.loss"])
    assert_status(results["forward.runs"], Status.FAILED, "mat1 and mat2")
    assert_status(results["training.loss"], Status.SKIPPED, "see forward.runs")
