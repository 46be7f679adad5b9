"""unit.closures and unit.isolation.copy_model: a copy follows the functions a model holds
over its own submodules, and a copy that still reaches the original is never trained
silently."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from tests.fixtures import models_faithful as models
from torchvet.unit.closures import deep_copy, foreign_reference
from torchvet.unit.copies import meta_copy
from torchvet.unit.isolation import UnfaithfulCopy, copy_model


def own_gradients_only(original: nn.Module, copied: nn.Module, x: torch.Tensor) -> None:
    copied(x).float().sum().backward()
    assert all(p.grad is None for p in original.parameters()), "the original got gradients"
    assert all(p.grad is not None for p in copied.parameters()), "a copy parameter got none"


def test_plain_deepcopy_of_a_lambda_block_reaches_the_original() -> None:
    model = models.TinyGPT()
    assert foreign_reference(model, copy.deepcopy(model)) == (
        "h.0.mlpf (a lambda) reaches the original's h.0.mlp")


def test_deep_copy_follows_the_lambda_and_trains_its_own_parameters() -> None:
    model = models.TinyGPT()
    copied = deep_copy(model)
    assert foreign_reference(model, copied) is None
    own_gradients_only(model, copied, torch.randint(0, 11, (2, 5)))


def test_deep_copy_follows_a_hook_closure() -> None:
    model = models.HookedScale()
    copied = copy_model(model, rebuild=lambda: pytest.fail("no rebuild needed"))
    own_gradients_only(model, copied, torch.randn(2, 4))


def test_a_reference_the_copy_cannot_follow_falls_back_to_a_fresh_instance() -> None:
    model = models.HiddenHolder()
    assert "route (a lambda) reaches the original's mlp" in str(
        foreign_reference(model, deep_copy(model)))
    copied = copy_model(model, rebuild=models.HiddenHolder)
    assert torch.equal(copied.mlp.weight, model.mlp.weight)
    own_gradients_only(model, copied, torch.randn(2, 4))


def test_no_faithful_copy_at_all_is_named_not_trained() -> None:
    model = models.hidden_holder_singleton()
    with pytest.raises(UnfaithfulCopy, match=r"route \(a lambda\) reaches the original's mlp"):
        copy_model(model, rebuild=models.hidden_holder_singleton)


def test_meta_copy_follows_the_lambda() -> None:
    model = models.TinyGPT()
    twin = meta_copy(model, fallback=lambda: pytest.fail("no fallback needed"))
    twin.to("meta")
    assert twin(torch.randint(0, 11, (2, 5)).to("meta")).device.type == "meta"
    assert all(p.device.type == "cpu" for p in model.parameters())


def test_meta_copy_falls_back_when_the_copy_reaches_the_original() -> None:
    fresh = models.HiddenHolder()
    assert meta_copy(models.HiddenHolder(), fallback=lambda: fresh) is fresh
