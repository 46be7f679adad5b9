"""checks.data.distinct: data.distinct (samples all alike: __getitem__ ignores its index)
and data.idempotent (a read that changes the dataset), each with its healthy twin —
random augmentation drawn from a seeded RNG reads the same twice."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from tests.helpers import assert_status, assert_where, verdict, vet
from torchvet.results import Status

HERE = Path(__file__)
READS = {"count": 0}


class Rows(Dataset):
    def __init__(self, use_index: bool = True, same_inputs: bool = False) -> None:
        gen = torch.Generator().manual_seed(0)
        self.x = torch.randn(20, 3, generator=gen)
        self.y = torch.arange(20) % 3
        self.use_index = use_index
        self.same_inputs = same_inputs

    def __len__(self) -> int:
        return 20

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        if index >= 20:
            raise IndexError(index)
        row = index if self.use_index else 0
        return self.x[0 if self.same_inputs else row], self.y[row]


def dataset(ds: Dataset) -> Any:
    return lambda: {"dataset": ds, "batch_size": 4, "num_classes": 3}


def test_identical_samples_fail_and_distinct_ones_pass() -> None:
    result = verdict(dataset(Rows(use_index=False)), "data.distinct", kind="dataset")
    assert_status(result, Status.FAILED, "all 20 scanned samples are identical",
                  "__getitem__ ignores its index")
    assert_status(verdict(dataset(Rows()), "data.distinct", kind="dataset"), Status.PASSED)


def test_identical_inputs_with_differing_labels_fail() -> None:
    result = verdict(dataset(Rows(same_inputs=True)), "data.distinct", kind="dataset")
    assert_status(result, Status.FAILED, "the inputs of all 20 scanned samples are identical")


class Cursor(Rows):
    """Reads a cursor instead of its index, so dataset[len] returns a sample too."""

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.x[0], self.y[0]


def test_data_length_defers_to_data_distinct() -> None:
    results = vet(dataset(Cursor()), ["data.length", "data.distinct"], kind="dataset")
    assert_status(results["data.distinct"], Status.FAILED, "identical")
    assert_status(results["data.length"], Status.SKIPPED, "see data.distinct")


class Cached(Dataset):
    """Images kept as 0..255 floats and normalised on read, with a random flip."""

    def __init__(self, inplace: bool) -> None:
        self.images = torch.rand(12, 2, 4, generator=torch.Generator().manual_seed(0)) * 255
        self.inplace = inplace

    def __len__(self) -> int:
        return 12

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        image = self.images[index]
        if self.inplace:
            image.sub_(127.5)  # culprit: normalises the cached image itself
        else:
            image = image - 127.5
        if torch.rand(()) < 0.5:
            image = image.flip(-1)
        return image, index % 2


def test_an_in_place_change_of_the_stored_data_is_named_at_its_line() -> None:
    result = verdict(dataset(Cached(True)), "data.idempotent", kind="dataset")
    assert_status(result, Status.FAILED, "read twice, with every RNG seeded alike",
                  "sub_() writes into dataset.images in place")
    assert_where(result, "# culprit: normalises the cached", HERE)
    assert_status(verdict(dataset(Cached(False)), "data.idempotent", kind="dataset"),
                  Status.PASSED, "read twice give the same samples")


class Records(Dataset):
    def __init__(self, write_back: bool) -> None:
        self.records = [{"x": torch.full((2,), float(i)), "y": i % 2} for i in range(10)]
        self.write_back = write_back

    def __len__(self) -> int:
        return 10

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        record = self.records[index]
        if self.write_back:
            record["x"] = record["x"] * 2
            return record["x"], record["y"]
        return record["x"] * 2, record["y"]


def test_a_value_written_back_names_the_attribute() -> None:
    result = verdict(dataset(Records(True)), "data.idempotent", kind="dataset")
    assert_status(result, Status.FAILED, "__getitem__ changes dataset.records")
    assert_status(verdict(dataset(Records(False)), "data.idempotent", kind="dataset"),
                  Status.PASSED)


class PrivateJitter(Rows):
    """Augmentation from a generator of its own, seeded once: reads differ by design."""

    def __init__(self) -> None:
        super().__init__()
        self.rng = np.random.default_rng(0)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        x, y = super().__getitem__(index)
        return x + torch.from_numpy(self.rng.normal(0, 0.1, 3)).float(), y


def test_augmentation_from_a_private_generator_is_not_a_changed_dataset() -> None:
    result = verdict(dataset(PrivateJitter()), "data.idempotent", kind="dataset")
    assert_status(result, Status.PASSED, "dataset.rng, a private random generator")


class GlobalCounter(Rows):
    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        READS["count"] += 1
        x, y = super().__getitem__(index)
        return x + READS["count"], y


def test_reads_that_differ_without_a_cause_in_the_dataset_say_so() -> None:
    result = verdict(dataset(GlobalCounter()), "data.idempotent", kind="dataset")
    assert_status(result, Status.FAILED, "no attribute of the dataset changed",
                  "outside the dataset")
