"""Checks that train or move a copy get one that behaves like the user's model: functions
the model holds over its own submodules (minGPT's lambda MLP, a hook closure) are part of
the copy, and a copy that cannot be made faithful is named instead of judged."""

from __future__ import annotations

from typing import Any

import pytest

from tests.fixtures import models_faithful as models
from tests.helpers import assert_status, vet
from torchvet.results import Status

COPYING = ["training.gradients", "training.update", "portability.device"]


@pytest.mark.parametrize("factory", [models.tiny_gpt, models.hooked_scale,
                                     models.hidden_holder])
def test_models_holding_functions_over_their_submodules_pass(factory: Any) -> None:
    results = vet(factory, COPYING)
    assert sorted(results) == sorted(COPYING)
    for result in results.values():
        assert_status(result, Status.PASSED)


def test_a_copy_that_still_reaches_the_original_is_named() -> None:
    result = vet(models.hidden_holder_singleton, ["training.gradients"])["training.gradients"]
    assert_status(result, Status.ERROR, "route (a lambda) reaches the original's mlp",
                  "a fresh instance failed")


@pytest.mark.parametrize("factory", [models.gpt_configured_by_closure,
                                     models.gpt_configured_by_model])
def test_optimizers_built_by_the_model_train_what_torchvet_trains(factory: Any) -> None:
    results = vet(factory, ["training.update", "learning.learning_rate"])
    assert_status(results["training.update"], Status.PASSED)
    assert_status(results["learning.learning_rate"], Status.PASSED, "AdamW(lr=0.0006")


@pytest.mark.parametrize(("factory", "fragment"), [
    (models.optimizer_of_another_model, "holds none of the model's parameters"),
    (models.overlapping_groups, "lm_head.weight is in parameter groups 0 and 1"),
])
def test_an_unusable_optimizer_is_a_named_failure_not_a_crash(factory: Any,
                                                              fragment: str) -> None:
    results = vet(factory, ["training.loss", "training.gradients", "training.update"])
    assert_status(results["training.update"], Status.FAILED, "the optimizer raised", fragment)
    for check_id in ("training.loss", "training.gradients"):
        assert_status(results[check_id], Status.SKIPPED, "(see training.update)")


def test_the_learning_rate_is_judged_as_the_script_clips_it() -> None:
    clipped = vet(models.word_lm_clipped, ["learning.learning_rate"])["learning.learning_rate"]
    assert_status(clipped, Status.PASSED, "SGD(lr=20) with gradient norm clipped at 0.25")
    unclipped = vet(models.word_lm_unclipped,
                    ["learning.learning_rate"])["learning.learning_rate"]
    assert_status(unclipped, Status.FAILED, "the loss diverges with SGD(lr=20)")


def test_a_step_with_schedule_accumulation_and_clipping_trains() -> None:
    checks = ["training.gradients", "training.update", "training.overfit",
              "learning.learning_rate"]
    results = vet(models.gpt_with_warmup, checks)
    for check_id in checks:
        assert_status(results[check_id], Status.PASSED)
    assert "2 micro-batches per step, your scheduler" in (
        results["learning.learning_rate"].message)
