"""Hostile-but-legal models: each user defect in an object torchvet calls becomes a verdict
that names it, never a torchvet crash (an internal exception, a worker that exits)."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from torch import nn

from tests.fixtures import models_faithful as models
from tests.helpers import assert_status, vet
from torchvet.results import Status


class ShadowedTrain(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.lin = nn.Linear(4, 3)
        self.train = True  # a config flag under a Module method's name

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.lin(x)


class ShadowingChild(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.block = nn.Linear(4, 3)
        self.block.eval = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.block(x)


def shadowed_train() -> dict[str, Any]:
    return {"model": ShadowedTrain(), "inputs": torch.randn(2, 4)}


def shadowing_child() -> dict[str, Any]:
    return {"model": ShadowingChild(), "inputs": torch.randn(2, 4)}


def raising_optimizer() -> dict[str, Any]:
    def optimizer(params: Any) -> Any:
        raise RuntimeError("no GPU for fused AdamW")
    return {"model": nn.Linear(4, 3), "inputs": torch.randn(2, 4), "optimizer": optimizer}


def step_returning_a_dict() -> dict[str, Any]:
    return {"model": nn.Linear(4, 3), "inputs": torch.randn(2, 4),
            "step": lambda model, x: {"loss": model(x).sum()}}


@pytest.mark.parametrize(("factory", "fragment"), [
    (shadowed_train, "model.train() raises TypeError: 'bool' object is not callable — "
                     "`self.train` is shadowed by an attribute in ShadowedTrain"),
    (shadowing_child, "block.eval() raises TypeError: 'int' object is not callable"),
])
def test_a_shadowed_module_method_is_named_for_every_check(factory: Any, fragment: str) -> None:
    results = vet(factory, ["forward.runs", "training.update", "portability.device"])
    assert len(results) == 3
    for result in results.values():
        assert_status(result, Status.ERROR, fragment, "rename the attribute")
        assert result.file and result.file.endswith("test_faults.py")


@pytest.mark.parametrize(("factory", "check_id", "status", "fragment"), [
    (raising_optimizer, "training.update", Status.FAILED,
     "the optimizer raised: RuntimeError: no GPU for fused AdamW"),
    (models.overlapping_groups, "training.update", Status.FAILED,
     "lm_head.weight is in parameter groups 0 and 1"),
    (models.optimizer_of_another_model, "training.update", Status.FAILED,
     "the optimizer holds none of the model's parameters"),
    (step_returning_a_dict, "training.loss", Status.FAILED, "the loss is a dict, not a tensor"),
])
def test_user_objects_that_raise_or_misbehave_get_a_named_verdict(
        factory: Any, check_id: str, status: Status, fragment: str) -> None:
    results = vet(factory, ["training.loss", "training.gradients", "training.update"])
    assert_status(results[check_id], status, fragment)
    assert not [r.message for r in results.values() if r.status is Status.ERROR]
