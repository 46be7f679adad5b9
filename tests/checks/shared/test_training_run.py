"""checks.shared.training_run: the short run every training.* check reads — who changed
each parameter (the optimizer, or the model's own code in the step), how many steps it
takes (one for a healthy model, more for zero-init layers, EMA targets and optimizers
that accumulate gradients), and that it trains a copy, never the pristine model."""

from __future__ import annotations

import copy
from typing import Any

import torch
from torch import nn

from tests.fixtures.corpus.healthy_patterns_models import AccumulatingOptimizer
from tests.helpers.unit import make_context
from torchvet.checks.shared.training_run import (
    ACCUMULATION_STEPS,
    TRAIN_STEPS,
    TrainingTrace,
    training_trace,
)


def trace_of(factory: Any) -> TrainingTrace:
    return training_trace(make_context(factory))


class OnlineTarget(nn.Module):
    """An online network and a target that follows it by EMA in ``update_target``."""

    def __init__(self, same_init: bool = True) -> None:
        super().__init__()
        self.online = nn.Linear(4, 4)
        self.target = copy.deepcopy(self.online) if same_init else nn.Linear(4, 4)
        self.target.requires_grad_(False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.online(x)

    @torch.no_grad()
    def update_target(self, decay: float = 0.99) -> None:
        for t, o in zip(self.target.parameters(), self.online.parameters(), strict=True):
            t.mul_(decay).add_(o, alpha=1 - decay)


def ema_step(model: OnlineTarget, x: torch.Tensor) -> torch.Tensor:
    model.update_target()
    return (model(x) - model.target(x)).pow(2).mean() + model(x).pow(2).mean()


def ema_model(same_init: bool = True) -> dict[str, Any]:
    return {"model": OnlineTarget(same_init), "inputs": lambda b: torch.randn(b, 4),
            "step": ema_step}


def test_the_model_s_own_update_and_the_optimizer_s_are_told_apart() -> None:
    trace = trace_of(lambda: ema_model(same_init=False))
    assert trace.self_moved == {"target.weight", "target.bias"}
    assert trace.optimizer_moved == {"online.weight", "online.bias"}
    assert trace.changed == dict.fromkeys(
        ["online.weight", "online.bias", "target.weight", "target.bias"], True)


def test_an_ema_target_equal_to_its_source_gets_the_steps_to_show_it_follows() -> None:
    """At step 1 the target equals its source: t*0.99 + o*0.01 is t or differs in the
    last bits only (the comparison is exact); from step 2 the source has trained."""
    trace = trace_of(ema_model)
    assert trace.self_moved == {"target.weight", "target.bias"}
    assert not trace.self_moved & trace.optimizer_moved
    assert trace.steps <= 2


def test_a_declared_frozen_target_does_not_cost_extra_steps() -> None:
    trace = trace_of(lambda: {**ema_model(), "frozen": ["target.*"]})
    assert trace.steps == 1


def test_a_healthy_model_costs_one_step() -> None:
    trace = trace_of(lambda: {"model": nn.Linear(4, 2), "inputs": torch.randn(2, 4)})
    assert trace.steps == 1
    assert trace.optimizer_moved == {"weight", "bias"}
    assert not trace.self_moved


def test_an_optimizer_that_accumulates_gets_the_calls_it_needs() -> None:
    trace = trace_of(lambda: {
        "model": nn.Linear(4, 2), "inputs": torch.randn(2, 4),
        "optimizer": lambda params: AccumulatingOptimizer(torch.optim.SGD(params, lr=0.1),
                                                        every=4)})
    assert trace.steps == 4
    assert trace.optimizer_moved == {"weight", "bias"}


def test_an_optimizer_that_never_moves_anything_stops_at_the_accumulation_bound() -> None:
    trace = trace_of(lambda: {"model": nn.Linear(4, 2), "inputs": torch.randn(2, 4),
                              "optimizer": lambda params: torch.optim.SGD(params, lr=0.0)})
    assert trace.steps == ACCUMULATION_STEPS
    assert not trace.optimizer_moved


def test_without_gradients_more_steps_would_not_help() -> None:
    class Detached(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc = nn.Linear(4, 2)
            self.scale = nn.Parameter(torch.ones(()))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.fc(x) * self.scale.detach()

    trace = trace_of(lambda: {"model": Detached(), "inputs": torch.randn(2, 4)})
    assert trace.steps == TRAIN_STEPS
    assert trace.grad_states["scale"] == ["none"] * TRAIN_STEPS


class LateTeacher(nn.Module):
    """A teacher set to an EMA of the student before each train forward with alpha
    ramped from 0 (mean teacher): its LayerNorm starts equal to the student's, so the
    EMA leaves it unchanged until the student's has trained."""

    def __init__(self) -> None:
        super().__init__()
        self.student = nn.Sequential(nn.Linear(4, 4), nn.LayerNorm(4))
        self.teacher = nn.Sequential(nn.Linear(4, 4), nn.LayerNorm(4)).requires_grad_(False)
        self.steps = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training:
            alpha = min(1 - 1 / (self.steps + 1), 0.99)
            with torch.no_grad():
                for t, s in zip(self.teacher.parameters(), self.student.parameters(),
                                strict=True):
                    t.mul_(alpha).add_(s, alpha=1 - alpha)
            self.steps += 1
        return self.student(x)


def test_an_ema_model_keeps_stepping_until_every_frozen_parameter_had_its_chance() -> None:
    trace = trace_of(lambda: {"model": LateTeacher(), "inputs": lambda b: torch.randn(b, 4)})
    assert trace.steps == 2
    assert set(trace.frozen) <= trace.self_moved


def test_the_run_trains_a_copy_and_leaves_the_pristine_model_alone() -> None:
    ctx = make_context(lambda: ema_model(same_init=False))
    before = {n: p.detach().clone() for n, p in ctx.model.named_parameters()}
    training_trace(ctx)
    for name, param in ctx.model.named_parameters():
        assert torch.equal(param, before[name]), name
        assert param.grad is None, name
