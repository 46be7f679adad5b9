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
