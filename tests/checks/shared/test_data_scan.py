"""checks.shared.data_scan: the sample scan is bounded, reaches the last sample, and gives
each load failure one owner."""

from __future__ import annotations

from types import SimpleNamespace

import torch
from torch.utils.data import Dataset

from tests.helpers import assert_status, vet
from torchvet.checks.shared.data_scan import LoadError, Scan, collate_plan, scan_indices
from torchvet.project.config import UnitConfig
from torchvet.results import Status
from torchvet.unit.data_batches import DataSpec


class Counting(Dataset):
    """10 000 samples; counts loads; a NaN only in the very last sample."""

    def __init__(self) -> None:
        self.loads = 0

    def __len__(self) -> int:
        return 10_000

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        if index >= len(self):
            raise IndexError(index)
        self.loads += 1
        value = float("nan") if index == len(self) - 1 else float(index)
        return torch.tensor([value]), index % 3


def test_scans_are_bounded_by_max_samples_and_include_the_last_sample() -> None:
    dataset = Counting()
    results = vet(lambda: dataset, ["data.samples", "data.finite", "data.labels"],
                  kind="dataset", config=UnitConfig(max_samples=32))
    assert dataset.loads <= 32 + 8, dataset.loads
    assert_status(results["data.finite"], Status.FAILED, "dataset[9999][0] contains 1 NaN")
    assert_status(results["data.samples"], Status.PASSED)


def spec(length: int, batch_size: int = 4, max_samples: int = 32,
         drop_last: bool = False) -> DataSpec:
    loader = SimpleNamespace(drop_last=drop_last) if drop_last else None
    return DataSpec(dataset=range(length), loader=loader, batch_size=batch_size,
                    max_samples=max_samples)


def test_a_small_dataset_is_read_whole() -> None:
    assert scan_indices(10, spec(10)) == list(range(10))


def test_a_large_dataset_is_read_from_the_start_the_tail_and_spread_between() -> None:
    indices = scan_indices(1000, spec(1000))
    assert len(indices) == 32 and indices == sorted(set(indices))
    assert indices[:16] == list(range(16))  # the first half of the budget from the start
    assert {996, 997, 998, 999} <= set(indices)  # the partial last batch, the last sample
    assert any(300 < i < 700 for i in indices)  # the rest spread over the middle


def test_collate_plan_checks_the_head_and_the_tail_batches() -> None:
    plan = collate_plan(102, spec(102))
    assert plan[:4] == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9, 10, 11], [12, 13, 14, 15]]
    assert plan[-2:] == [[96, 97, 98, 99], [100, 101]]  # the last full one, the partial one
    dropped = collate_plan(102, spec(102, drop_last=True))
    assert dropped[-1] == [96, 97, 98, 99]


def test_load_failures_belong_to_length_or_samples() -> None:
    scan = Scan(None, spec(10))  # type: ignore[arg-type]  # the owner needs no context
    assert scan.owner_of(LoadError(3, IndexError("3"), "")) == "data.length"
    assert scan.owner_of(LoadError(9, ValueError("bad"), "")) == "data.length"  # the last one
    assert scan.owner_of(LoadError(3, ValueError("bad"), "")) == "data.samples"
