"""The data checks together: healthy datasets (dict and tuple samples, torch-RNG
augmentation, padded text, streams, loaders) pass every check, verdicts reproduce with the
seed, and a dataset declares its own skip and xfail."""

from __future__ import annotations

from typing import Any

import pytest

from tests.fixtures import data_fixtures as fx
from tests.fixtures.data_fixtures import (
    CHEAP_CHECKS,
)
from tests.helpers import assert_status, verdict, vet
from torchvet.project.config import UnitConfig
from torchvet.results import Status

HEALTHY = {
    "tuple_samples": {},
    "dict_samples": {},
    "augmented": {},
    "global_numpy_augmented": {},
    "seeded_private_rng": {},
    "padded_text": {},
    "token_classification": {},
    "dataloader_factory": {},
    "label_first": {},
    "soft_labels": {},
    "stream": {"data.length": (Status.SKIPPED, "IterableDataset")},
    "regression": {"data.labels": (Status.SKIPPED, "regression targets")},
}


@pytest.mark.parametrize("name", sorted(HEALTHY))
def test_healthy_dataset_passes_every_cheap_check(name: str) -> None:
    results = vet(getattr(fx, name), CHEAP_CHECKS, kind="dataset")
    expected = HEALTHY[name]
    for check_id in CHEAP_CHECKS:
        status, fragment = expected.get(check_id, (Status.PASSED, ""))
        assert check_id in results, f"{check_id} did not report"
        assert_status(results[check_id], status, fragment)
    assert "spec" not in results, results["spec"].message


@pytest.mark.parametrize("name", ["classifier_with_data", "text_model", "bce_float_labels"])
def test_healthy_model_with_dataset_passes_every_data_check(name: str) -> None:
    checks = [*CHEAP_CHECKS, "data.model_fit"]
    results = vet(getattr(fx, name), checks)
    for check_id in checks:
        assert_status(results[check_id], Status.PASSED)


def test_same_seed_gives_identical_verdicts() -> None:
    for factory in (fx.unseeded_rng, fx.nan_sample, fx.one_based_declared, fx.augmented):
        first = vet(factory, CHEAP_CHECKS, kind="dataset")
        second = vet(factory, CHEAP_CHECKS, kind="dataset")
        assert {k: (r.status, r.message) for k, r in first.items()} == {
            k: (r.status, r.message) for k, r in second.items()
        }


def test_seed_changes_inputs_not_healthy_verdicts() -> None:
    for seed in (0, 1, 7):
        results = vet(fx.augmented, CHEAP_CHECKS, kind="dataset", seed=seed)
        assert all(r.status is Status.PASSED for r in results.values()), {
            k: r.message for k, r in results.items()
        }


def test_dataset_factory_declares_skip_and_xfail() -> None:
    def factory() -> dict[str, Any]:
        return {"dataset": fx.Overlong(size=10), "batch_size": 4,
                "skip": {"data.workers": "no spawn on this platform"},
                "xfail": {"data.length": "the last shard is still downloading"}}

    results = vet(factory, ["data.length", "data.workers"], kind="dataset")
    assert_status(results["data.length"], Status.XFAILED,
                  "xfail (the last shard is still downloading)", "the last index")
    assert_status(results["data.workers"], Status.SKIPPED, "no spawn on this platform")


def test_dataset_config_declares_skip() -> None:
    result = verdict(fx.empty, "data.length", kind="dataset",
                     config=UnitConfig(skip={"data.*": "filled at deploy time"}))
    assert_status(result, Status.SKIPPED, "skipped (data.*): filled at deploy time")
