"""data.length, data.samples, data.finite: each bug named by sample index and field,
located, and the fix stated; one root cause reported once."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from tests.fixtures import data_fixtures as fx
from tests.fixtures.data_fixtures import (
    CHEAP_CHECKS,
    FIXTURE_FILE,
)
from tests.helpers import assert_status, assert_where, method_line, verdict, vet
from torchvet.results import Status


def test_len_larger_than_the_data() -> None:
    results = vet(fx.overlong, ["data.length", "data.samples", "data.collate",
                                "data.reproducible"], kind="dataset")
    assert_status(results["data.length"], Status.FAILED,
                  "len(dataset) is 12 but the last index dataset[11] raised IndexError",
                  "only the first 10 samples load", "make __len__ return")
    assert results["data.length"].line == method_line(fx.Overlong, "__len__")
    # the same root cause is not reported twice
    assert_status(results["data.samples"], Status.PASSED, "see data.length")
    assert_status(results["data.collate"], Status.SKIPPED, "see data.length")
    assert_status(results["data.reproducible"], Status.SKIPPED, "see data.length")


def test_index_len_must_raise_index_error() -> None:
    result = verdict(fx.wraps_around, "data.length", kind="dataset")
    assert_status(result, Status.FAILED, "dataset[21] (index len) returned a sample",
                  "never ends", "raise IndexError when index >= len(self)")
    assert result.file and result.file.endswith(FIXTURE_FILE.name)
    assert result.line == method_line(fx.WrapsAround, "__getitem__")


def test_index_len_raising_key_error_warns() -> None:
    result = verdict(fx.keyed_by_index, "data.length", kind="dataset")
    assert_status(result, Status.WARNED, "dataset[6] (index len) raised KeyError",
                  "instead of IndexError")


def test_empty_dataset() -> None:
    results = vet(fx.empty, [*CHEAP_CHECKS, "data.workers"], kind="dataset")
    assert_status(results["data.length"], Status.FAILED, "len(Empty) is 0", "empty")
    for check_id in ["data.samples", "data.finite", "data.labels", "data.collate",
                     "data.reproducible", "data.workers"]:
        assert_status(results[check_id], Status.SKIPPED, "empty (see data.length)")


def test_iterable_dataset_skips_what_needs_len() -> None:
    results = vet(fx.stream, CHEAP_CHECKS, kind="dataset")
    assert_status(results["data.length"], Status.SKIPPED, "IterableDataset",
                  "len and indexing do not apply")
    assert_status(results["data.samples"], Status.PASSED, "10 samples")
    assert_status(results["data.collate"], Status.PASSED, "3 batch(es) of 4")


def test_ragged_samples_without_collate_fn_fail_in_samples_and_collate() -> None:
    results = vet(fx.ragged_text, ["data.samples", "data.collate"], kind="dataset")
    assert_status(results["data.samples"], Status.FAILED,
                  'dataset[1]["input_ids"] has shape (8,) but dataset[0]["input_ids"] has (3,)',
                  "default_collate cannot stack", "pad_sequence", "collate_fn")
    assert_status(results["data.collate"], Status.FAILED, "collating samples 0..3",
                  'dataset[1]["input_ids"] has shape (8,)', "pad_sequence")


def test_a_sample_that_raises_is_named_with_its_line() -> None:
    results = vet(fx.corrupt_sample, ["data.samples", "data.collate"], kind="dataset")
    assert_status(results["data.samples"], Status.FAILED,
                  "dataset[5] raised ValueError: cannot decode record 5")
    assert_where(results["data.samples"], 'raise ValueError("cannot decode record 5")',
                 fx.FIXTURE_FILE)
    assert_status(results["data.collate"], Status.SKIPPED, "see data.samples")


def test_mixed_dtypes_across_samples() -> None:
    result = verdict(fx.mixed_dtypes, "data.samples", kind="dataset")
    assert_status(result, Status.FAILED, "dataset[2][0] is Tensor(4,) float64",
                  "dataset[0][0] is Tensor(4,) float32", "share a dtype")


def test_a_value_default_collate_cannot_batch() -> None:
    result = verdict(fx.opaque_samples, "data.samples", kind="dataset")
    assert_status(result, Status.FAILED, "dataset[0][0] is", "Opaque",
                  "default_collate cannot batch")


def test_dict_keys_that_differ_between_samples() -> None:
    class Optional(Dataset):
        def __len__(self) -> int:
            return 4

        def __getitem__(self, i: int) -> dict[str, Any]:
            sample = {"x": torch.zeros(2), "label": 0}
            if i != 2:
                sample["mask"] = torch.ones(2)
            return sample

    result = verdict(Optional, "data.samples", kind="dataset")
    assert_status(result, Status.FAILED, "dataset[2] is dict(label, x)",
                  "dataset[0] is dict(label, mask, x)", "same fields")


def test_empty_stream_fails_in_samples() -> None:
    class Nothing(torch.utils.data.IterableDataset):
        def __iter__(self) -> Any:
            return iter([])

    results = vet(Nothing, CHEAP_CHECKS, kind="dataset")
    assert_status(results["data.samples"], Status.FAILED, "yielded no sample")
    assert_status(results["data.finite"], Status.SKIPPED, "see data.samples")


def test_nan_sample_is_named_by_index_and_field() -> None:
    result = verdict(fx.nan_sample, "data.finite", kind="dataset")
    assert_status(result, Status.FAILED, 'dataset[7]["x"] contains 1 NaN', "nan_to_num")
    assert result.line == method_line(fx.DictSamples, "__getitem__")


def test_inf_in_a_numpy_field_of_a_stream_sample() -> None:
    class Readings(torch.utils.data.IterableDataset):
        def __iter__(self) -> Any:
            for i in range(5):
                yield {"value": np.array([1.0, np.inf if i == 3 else 2.0]), "label": 0}

    result = verdict(Readings, "data.finite", kind="dataset")
    assert_status(result, Status.FAILED, 'sample #3["value"] contains 1 Inf')
