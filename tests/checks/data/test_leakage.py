"""checks.data.leakage: a declared validation split that shares samples with the training
split fails (random_split drawn twice, oversampling before the split); a clean split, a
few natural duplicates and a dataset without a validation split pass."""

from __future__ import annotations

from typing import Any

import torch
from torch.utils.data import Subset, TensorDataset, random_split

from tests.helpers import assert_status, verdict
from torchvet.results import Status

CHECK = "data.leakage"


def rows() -> TensorDataset:
    gen = torch.Generator().manual_seed(0)
    return TensorDataset(torch.randn(200, 4, generator=gen), torch.randint(0, 2, (200,),
                                                                              generator=gen))


def split(twice: bool) -> dict[str, Any]:
    full = rows()
    if twice:
        train, _ = random_split(full, [160, 40], generator=torch.Generator().manual_seed(1))
        _, val = random_split(full, [160, 40], generator=torch.Generator().manual_seed(2))
    else:
        train, val = random_split(full, [160, 40], generator=torch.Generator().manual_seed(1))
    return {"dataset": train, "validation": val, "batch_size": 8, "num_classes": 2}


def test_two_different_splits_leak_validation_samples_into_training() -> None:
    result = verdict(lambda: split(True), CHECK, kind="dataset")
    assert_status(result, Status.FAILED, "validation samples", "are also training samples",
                  "split once")
    assert "validation[" in result.details
    assert_status(verdict(lambda: split(False), CHECK, kind="dataset"), Status.PASSED,
                  "0 of 40 validation inputs")


def test_a_few_natural_duplicates_are_not_a_leak() -> None:
    full = rows()
    copy = TensorDataset(full.tensors[0][150:].clone(), full.tensors[1][150:].clone())
    copy.tensors[0][0] = full.tensors[0][0]  # one validation row happens to equal a train row
    factory = lambda: {"dataset": Subset(full, range(150)), "validation": copy}  # noqa: E731
    assert_status(verdict(factory, CHECK, kind="dataset"), Status.PASSED, "1 of 50")


def test_without_a_validation_split_there_is_nothing_to_leak_into() -> None:
    result = verdict(lambda: {"dataset": rows()}, CHECK, kind="dataset")
    assert_status(result, Status.PASSED, "no validation split declared")
