"""unit.recipe: the rest of the user's training step — clipping, accumulation, a schedule,
autocast — declared in the spec or the unit's table, and taken as the script takes it."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from torch import nn

from torchvet.project.config import UnitConfig
from torchvet.unit.recipe import TrainingRecipe, UserStep
from torchvet.unit.spec import SpecError, normalize_model


def normalize(obj: Any, config: UnitConfig | None = None) -> Any:
    return normalize_model(obj, "m", config or UnitConfig(), 0)


def test_the_spec_declares_the_step_and_the_table_fills_in() -> None:
    spec = normalize({"model": nn.Linear(4, 3), "clip_grad_norm": 0.25,
                      "scheduler": lambda opt: None}, UnitConfig(accumulate=4, amp="bf16"))
    recipe = spec.recipe
    assert (recipe.clip_grad_norm, recipe.accumulate, recipe.amp) == (0.25, 4, torch.bfloat16)
    assert recipe.describe() == ("gradient norm clipped at 0.25, 4 micro-batches per step, "
                                 "your scheduler, autocast bfloat16")
    assert normalize(nn.Linear(4, 3)).recipe == TrainingRecipe()


@pytest.mark.parametrize(("key", "value", "fragment"), [
    ("clip_grad_norm", -1, "clip_grad_norm=-1: give a positive number"),
    ("amp", "fp8", "amp='fp8': use 'bf16' or 'fp16'"),
    ("scheduler", 3, "scheduler must be a callable(optimizer)"),
])
def test_unusable_step_keys_say_what_to_give(key: str, value: Any, fragment: str) -> None:
    with pytest.raises(SpecError, match=fragment.replace("(", r"\(").replace(")", r"\)")):
        normalize({"model": nn.Linear(4, 3), key: value})


def test_the_step_clips_the_gradient_norm_before_the_optimizer() -> None:
    model = nn.Linear(4, 1)
    optimizer = torch.optim.SGD(model.parameters(), lr=1.0)
    before = [p.detach().clone() for p in model.parameters()]
    UserStep(TrainingRecipe(clip_grad_norm=0.25), model, optimizer).full(
        lambda: 100 * model(torch.ones(2, 4)).sum())
    moved = torch.cat([(p.detach() - b).flatten()
                       for p, b in zip(model.parameters(), before, strict=True)])
    assert moved.norm().item() == pytest.approx(0.25, rel=1e-5)


def test_accumulation_averages_the_micro_batches_and_steps_once() -> None:
    model = nn.Linear(4, 1, bias=False)
    calls = []
    optimizer = torch.optim.SGD(model.parameters(), lr=1.0)

    def compute() -> torch.Tensor:
        calls.append(1)
        return model(torch.ones(1, 4)).sum()

    start = model.weight.detach().clone()
    UserStep(TrainingRecipe(accumulate=3), model, optimizer).full(compute)
    assert len(calls) == 3
    assert torch.allclose(model.weight, start - 1.0), "mean of three identical gradients"


def test_the_schedule_advances_after_each_step_of_the_declared_optimizer_only() -> None:
    model = nn.Linear(2, 1)
    recipe = TrainingRecipe(scheduler=lambda opt: torch.optim.lr_scheduler.StepLR(opt, 1, 0.5))
    optimizer = torch.optim.SGD(model.parameters(), lr=1.0)
    step = UserStep(recipe, model, optimizer)
    step.full(lambda: model(torch.ones(1, 2)).sum())
    assert optimizer.param_groups[0]["lr"] == 0.5
    assert UserStep(recipe, model, optimizer, declared=False).scheduler is None
