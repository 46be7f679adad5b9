"""unit.user_optimizer: the declared optimizer, however written, trains the model torchvet
trains, with its groups and hyperparameters; one that cannot is a named usage error."""

from __future__ import annotations

import copy

import pytest
import torch

from tests.fixtures import models_faithful as models
from torchvet.unit.user_optimizer import OptimizerUsage, build_optimizer


def test_a_closure_over_the_factorys_instance_is_rebound_by_name() -> None:
    spec = models.gpt_configured_by_closure()
    pristine = spec["model"]
    trained = copy.deepcopy(pristine)
    optimizer = build_optimizer(spec["optimizer"], trained, pristine)
    held = {id(p) for g in optimizer.param_groups for p in g["params"]}
    assert held == {id(p) for p in trained.parameters()}
    decay = {n for n, p in trained.named_parameters()
             if id(p) in {id(q) for q in optimizer.param_groups[0]["params"]}}
    assert "lm_head.weight" in decay and "ln_f.bias" not in decay
    assert [g["weight_decay"] for g in optimizer.param_groups] == [0.1, 0.0]
    assert optimizer.param_groups[0]["betas"] == (0.9, 0.95)


def test_a_callable_on_the_model_is_given_the_model() -> None:
    spec = models.gpt_configured_by_model()
    trained = copy.deepcopy(spec["model"])
    optimizer = build_optimizer(spec["optimizer"], trained, spec["model"])
    assert isinstance(optimizer, torch.optim.AdamW)
    assert len(optimizer.param_groups) == 2


def test_a_plain_callable_on_params_is_unchanged() -> None:
    model = torch.nn.Linear(2, 2)
    optimizer = build_optimizer(lambda p: torch.optim.SGD(p, lr=0.5), model, model)
    assert optimizer.param_groups[0]["params"] == list(model.parameters())


def test_an_optimizer_of_another_model_names_the_fix() -> None:
    spec = models.optimizer_of_another_model()
    with pytest.raises(OptimizerUsage, match="holds none of the model's parameters"):
        build_optimizer(spec["optimizer"], copy.deepcopy(spec["model"]), spec["model"])


def test_overlapping_groups_name_the_parameter() -> None:
    spec = models.overlapping_groups()
    with pytest.raises(OptimizerUsage, match=r"lm_head\.weight is in parameter groups 0 and 1"):
        build_optimizer(spec["optimizer"], spec["model"], spec["model"])


def test_a_callable_returning_no_optimizer_is_named() -> None:
    model = torch.nn.Linear(2, 2)
    with pytest.raises(OptimizerUsage, match="returned list, not an optimizer"):
        build_optimizer(lambda p: list(p), model, model)
