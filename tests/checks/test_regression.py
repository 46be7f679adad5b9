"""regression.signature, regression.outputs and regression.cost: a unit against its
snapshot. The model compared with itself or with a no-op refactor passes; each change a
pull request makes is named, on the line that made it; what cannot be compared (no
snapshot, another torch, another seed, other inputs) skips saying why."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.fixtures import models_real as real
from tests.fixtures import models_regression as models
from tests.helpers import assert_status, line_in
from tests.helpers.regression import compare, take_snapshot
from torchvet.project.config import UnitConfig
from torchvet.regression.compute import values_key
from torchvet.regression.store import Baseline, dumps
from torchvet.results import CheckResult, Status

FIXTURE = Path(models.__file__)
KEY = values_key("cpu")


def committed(factory: Callable[[], Any], **kwargs: Any) -> dict[str, Any]:
    """The snapshot as it reads back from its file."""
    return json.loads(dumps(take_snapshot(factory, **kwargs)))


@pytest.fixture(scope="module")
def base() -> dict[str, Any]:
    return committed(models.net)


def assert_at(result: CheckResult, marker: str) -> None:
    assert result.file == FIXTURE.name, (result.file, result.line)
    assert result.line == line_in(FIXTURE, marker), result.line


def test_without_a_snapshot_every_regression_check_says_how_to_create_one() -> None:
    missing = Baseline(None, ".torchvet/snapshots/net.json",
                       "no snapshot .torchvet/snapshots/net.json: create it with "
                       "`torchvet snapshot`")
    for baseline in (missing, None):
        results = compare(models.net, baseline)
        assert set(results) == {"regression.signature", "regression.outputs",
                                "regression.cost"}
        for result in results.values():
            assert_status(result, Status.SKIPPED, "create it with `torchvet snapshot`")


@pytest.mark.parametrize("factory", [models.net, models.refactored],
                         ids=["itself", "no-op refactor"])
def test_the_same_model_and_a_no_op_refactor_pass(base: dict[str, Any],
                                                  factory: Callable[[], Any]) -> None:
    results = compare(factory, base)
    assert_status(results["regression.signature"], Status.PASSED,
                  "outputs, state_dict and inputs match .torchvet/snapshots/net.json")
    assert_status(results["regression.outputs"], Status.PASSED, "2 leaf(s) match")
    assert_status(results["regression.cost"], Status.PASSED, "parameters 420 → 420")


def test_a_changed_activation_fails_outputs_naming_the_leaf_and_the_module(
        base: dict[str, Any]) -> None:
    results = compare(models.gelu, base)
    assert_status(results["regression.signature"], Status.PASSED)
    outputs = results["regression.outputs"]
    assert_status(outputs, Status.FAILED, 'output out["features"] moved by up to',
                  "vs .torchvet/snapshots/net.json", "first at the output of encoder",
                  "if intended, accept it with `torchvet snapshot --update`")
    assert 'out["logits"] moved by up to' in outputs.details
    assert_at(outputs, "# CHANGE: activation")


def test_a_renamed_submodule_fails_signature_naming_old_and_new_keys(
        base: dict[str, Any]) -> None:
    results = compare(models.renamed, base)
    signature = results["regression.signature"]
    assert_status(signature, Status.FAILED,
                  "state_dict keys renamed encoder.* → backbone.* (2 keys), e.g. "
                  "encoder.0.bias → backbone.0.bias",
                  "checkpoints saved before this change will not load")
    assert "encoder.0.weight → backbone.0.weight" in signature.details
    assert_at(signature, "# CHANGE: rename")
    assert_status(results["regression.outputs"], Status.PASSED)


def test_a_widened_layer_warns_cost_with_the_numbers(base: dict[str, Any]) -> None:
    results = compare(models.widened, base)
    cost = results["regression.cost"]
    assert_status(cost, Status.WARNED, "cost changed by more than 5%",
                  "parameters 420 → 628 (+49.5%)", "forward FLOPs", "(+50.0%)",
                  "encoder: 288 → 432 parameters")
    assert_at(cost, "# CHANGE: widened")
    assert_status(results["regression.signature"], Status.FAILED,
                  "state_dict shapes changed: encoder.0.weight 32x8 → 48x8")


def test_the_cost_share_is_configurable(base: dict[str, Any]) -> None:
    results = compare(models.widened, base, ["regression.cost"],
                      config=UnitConfig(cost_threshold=0.6))
    assert_status(results["regression.cost"], Status.PASSED)


def test_an_output_dtype_change_fails_signature(base: dict[str, Any]) -> None:
    result = compare(models.double, base)["regression.signature"]
    assert_status(result, Status.FAILED, 'output out["features"] dtype float32 → float64',
                  "code that consumes this unit may break")


def test_another_torch_or_device_is_compared_under_its_own_key_or_skips(
        base: dict[str, Any]) -> None:
    other = copy.deepcopy(base)
    other["measured"] = {"torch 2.99 / cpu": other["measured"][KEY]}
    results = compare(models.gelu, other)
    assert_status(results["regression.outputs"], Status.SKIPPED,
                  f"no values for {KEY} in .torchvet/snapshots/net.json (it has: torch 2.99 "
                  "/ cpu): `torchvet snapshot` adds them")
    assert_status(results["regression.signature"], Status.PASSED)
    assert_status(results["regression.cost"], Status.PASSED, "parameters 420 → 420")
    assert "FLOPs" not in results["regression.cost"].message


def test_another_seed_skips_the_values(base: dict[str, Any]) -> None:
    result = compare(models.net, base, ["regression.outputs"], seed=3)["regression.outputs"]
    assert_status(result, Status.SKIPPED, "taken with seed 0 and this run uses seed 3")


def test_other_inputs_skip_the_values_instead_of_blaming_the_model(
        base: dict[str, Any]) -> None:
    result = compare(models.other_inputs, base)["regression.outputs"]
    assert_status(result, Status.SKIPPED, "the inputs differ from those of")


def test_a_declared_tolerance_is_honoured(base: dict[str, Any]) -> None:
    results = compare(models.gelu, base, ["regression.outputs"],
                      config=UnitConfig(tolerance={"atol": 10.0}))
    assert_status(results["regression.outputs"], Status.PASSED)


def test_a_dataset_compares_its_first_batch() -> None:
    snapshot = committed(models.ramp, kind="dataset", name="ramp")
    same = compare(models.ramp, snapshot, kind="dataset", name="ramp")
    assert set(same) == {"regression.signature", "regression.outputs"}
    assert all(r.status is Status.PASSED for r in same.values()), same
    changed = compare(models.rescaled_ramp, snapshot, kind="dataset", name="ramp")
    assert_status(changed["regression.outputs"], Status.FAILED,
                  "the first batch changed: batch[0] moved by up to")
    assert_status(changed["regression.signature"], Status.PASSED)


@pytest.mark.parametrize("name", sorted(real.REAL_MODELS))
def test_real_architectures_compare_clean_with_their_own_snapshot(name: str) -> None:
    factory = real.REAL_MODELS[name]
    results = compare(factory, committed(factory))
    problems = {cid: f"{r.status.value}: {r.message}" for cid, r in results.items()
                if r.status is not Status.PASSED}
    assert not problems, problems
