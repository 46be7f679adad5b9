"""data.*: each dataset bug caught by the right check with the culprit named, located and
the fix stated; healthy datasets (dict and tuple samples, torch-RNG augmentation, padded
text, streams, loaders) pass every check."""

from __future__ import annotations

import inspect
import json
import os
import time
from pathlib import Path
from typing import Any

import pytest
import torch
from torch.utils.data import DataLoader, Dataset

import torchvet.checks.data as data_checks
from conftest import FIXTURES, assert_status, line_in, run_cli, verdict, vet
from tests.fixtures import data_fixtures as fx
from torchvet.checks.catalogue import CATALOGUE
from torchvet.project.config import UnitConfig
from torchvet.results import Status
from torchvet.unit.data_batches import (
    DatasetSource,
    batch_at,
    is_default_collate,
    is_iterable,
    label_key,
    split_sample,
)
from torchvet.unit.spec import DataSpec

FIXTURE_FILE = Path(fx.__file__)
CHEAP = ["data.length", "data.samples", "data.finite", "data.labels", "data.collate",
         "data.reproducible"]


def line_of(snippet: str, path: Path = FIXTURE_FILE) -> int:
    return line_in(path, snippet)


def method_line(cls: type, name: str) -> int:
    return inspect.getsourcelines(vars(cls)[name])[1]


def assert_where(result: Any, snippet: str, path: Path = FIXTURE_FILE) -> None:
    assert result.file and result.file.endswith(path.name), (result.file, result.line)
    assert result.line == line_of(snippet, path), (
        f"{result.id} points at line {result.line}, expected {line_of(snippet, path)} "
        f"({snippet!r})"
    )


# --------------------------------------------------------------------------- no false alarms

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
    results = vet(getattr(fx, name), CHEAP, kind="dataset")
    expected = HEALTHY[name]
    for check_id in CHEAP:
        status, fragment = expected.get(check_id, (Status.PASSED, ""))
        assert check_id in results, f"{check_id} did not report"
        assert_status(results[check_id], status, fragment)
    assert "spec" not in results, results["spec"].message


@pytest.mark.parametrize("name", ["classifier_with_data", "text_model", "bce_float_labels"])
def test_healthy_model_with_dataset_passes_every_data_check(name: str) -> None:
    checks = [*CHEAP, "data.model_fit"]
    results = vet(getattr(fx, name), checks)
    for check_id in checks:
        assert_status(results[check_id], Status.PASSED)


def test_padding_collate_fn_makes_ragged_samples_fine() -> None:
    results = vet(fx.padded_text, ["data.samples", "data.collate"], kind="dataset")
    assert_status(results["data.samples"], Status.PASSED, '["input_ids"] vary',
                  "collate_fn batches")
    assert_status(results["data.collate"], Status.PASSED, "3 batch(es) of 4",
                  "the last holds 2")


def test_ignore_index_in_token_labels_is_not_out_of_range() -> None:
    result = verdict(fx.token_classification, "data.labels", kind="dataset")
    assert_status(result, Status.PASSED, '["labels"]', "within [0, 5)")


def test_random_torch_augmentation_is_reproducible_when_seeded_alike() -> None:
    result = verdict(fx.augmented, "data.reproducible", kind="dataset")
    assert_status(result, Status.PASSED, "identical shuffled batches", "16 samples")


def test_private_generator_seeded_in_init_reproduces_across_runs() -> None:
    result = verdict(fx.seeded_private_rng, "data.reproducible", kind="dataset")
    assert_status(result, Status.PASSED, "built by the factory with the same seed")


# --------------------------------------------------------------------------- data.labels


def test_one_based_labels_fail_when_num_classes_is_declared() -> None:
    result = verdict(fx.one_based_declared, "data.labels", kind="dataset")
    assert_status(result, Status.FAILED, "labels run 1..3", "[1] = 3", "look 1-based",
                  "subtract 1 in __getitem__", "num_classes=3")
    assert result.line == method_line(fx.TupleSamples, "__getitem__")


def test_one_based_labels_warn_when_num_classes_is_unknown() -> None:
    result = verdict(fx.one_based_undeclared, "data.labels", kind="dataset")
    assert_status(result, Status.WARNED, "run 1..3", "no sample of 21 has label 0",
                  "look 1-based", "subtract 1")


def test_one_based_labels_against_the_models_output_classes() -> None:
    def factory() -> dict[str, Any]:
        return {"model": fx.Classifier(), "loss": torch.nn.CrossEntropyLoss(),
                "dataset": fx.OneBased(), "batch_size": 4}

    result = verdict(factory, "data.labels")
    assert_status(result, Status.FAILED, "look 1-based", "the CrossEntropyLoss in the spec")


def test_one_based_labels_at_a_declared_label_position() -> None:
    result = verdict(fx.label_first_one_based, "data.labels", kind="dataset")
    assert_status(result, Status.FAILED, "[0] = 3", "look 1-based")


def test_label_outside_the_class_range() -> None:
    result = verdict(fx.out_of_range, "data.labels", kind="dataset")
    assert_status(result, Status.FAILED, "dataset[13][1] = 3 is outside [0, 3)",
                  "fix the labels or num_classes")


def test_float_class_labels_fail_when_num_classes_is_declared() -> None:
    result = verdict(fx.float_labels_declared, "data.labels", kind="dataset")
    assert_status(result, Status.FAILED, "dataset[0][1] is a float32 label",
                  "num_classes=3", "integer (int64) class ids", "dtype=torch.long")


def test_float_class_labels_fail_under_a_cross_entropy_loss() -> None:
    results = vet(fx.float_labels_with_ce, ["data.labels", "data.model_fit"])
    assert_status(results["data.labels"], Status.FAILED, "float32 label",
                  "the CrossEntropyLoss in the spec")
    assert_status(results["data.model_fit"], Status.FAILED, "the loss raised",
                  "labels [1]: (4,) float32", "CrossEntropyLoss needs int64 class ids")


def test_float_targets_without_classes_are_regression_not_a_bug() -> None:
    result = verdict(fx.float_labels_undeclared, "data.labels", kind="dataset")
    assert_status(result, Status.SKIPPED, "regression targets", "declare num_classes")


def test_dict_samples_name_the_label_key() -> None:
    def factory() -> dict[str, Any]:
        dataset = fx.DictSamples()
        dataset.y = [y + 1 for y in dataset.y]
        return {"dataset": dataset, "num_classes": fx.CLASSES}

    result = verdict(factory, "data.labels", kind="dataset")
    assert_status(result, Status.FAILED, '["label"] = 3', "look 1-based")


def test_label_location_from_config() -> None:
    result = verdict(lambda: fx.LabelFirst(low=5), "data.labels", kind="dataset",
                     config=UnitConfig(label=0, num_classes=3))
    assert_status(result, Status.FAILED, "dataset[", "[0] = 7 is outside [0, 3)")


def test_samples_without_a_label_skip_with_the_way_to_declare_one() -> None:
    result = verdict(lambda: torch.utils.data.TensorDataset(torch.randn(6, 3)), "data.labels",
                     kind="dataset")
    assert_status(result, Status.SKIPPED, "no label in the samples", "'label'")


def test_integer_labels_under_bce_fail() -> None:
    def factory() -> dict[str, Any]:
        return {"model": fx.Classifier(classes=1), "loss": torch.nn.BCEWithLogitsLoss(),
                "dataset": fx.TupleSamples(), "batch_size": 4}

    result = verdict(factory, "data.labels")
    assert_status(result, Status.FAILED, "integer label", "BCEWithLogitsLoss",
                  "dtype=torch.float32")


# --------------------------------------------------------------------------- data.finite


def test_nan_sample_is_named_by_index_and_field() -> None:
    result = verdict(fx.nan_sample, "data.finite", kind="dataset")
    assert_status(result, Status.FAILED, 'dataset[7]["x"] contains 1 NaN', "nan_to_num")
    assert result.line == method_line(fx.DictSamples, "__getitem__")


def test_inf_in_a_numpy_field_of_a_stream_sample() -> None:
    import numpy as np

    class Readings(torch.utils.data.IterableDataset):
        def __iter__(self) -> Any:
            for i in range(5):
                yield {"value": np.array([1.0, np.inf if i == 3 else 2.0]), "label": 0}

    result = verdict(Readings, "data.finite", kind="dataset")
    assert_status(result, Status.FAILED, 'sample #3["value"] contains 1 Inf')


# --------------------------------------------------------------------------- data.samples


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
    assert_where(results["data.samples"], 'raise ValueError("cannot decode record 5")')
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

    results = vet(Nothing, CHEAP, kind="dataset")
    assert_status(results["data.samples"], Status.FAILED, "yielded no sample")
    assert_status(results["data.finite"], Status.SKIPPED, "see data.samples")


# --------------------------------------------------------------------------- data.length


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
    results = vet(fx.empty, [*CHEAP, "data.workers"], kind="dataset")
    assert_status(results["data.length"], Status.FAILED, "len(Empty) is 0", "empty")
    for check_id in ["data.samples", "data.finite", "data.labels", "data.collate",
                     "data.reproducible", "data.workers"]:
        assert_status(results[check_id], Status.SKIPPED, "empty (see data.length)")


def test_iterable_dataset_skips_what_needs_len() -> None:
    results = vet(fx.stream, CHEAP, kind="dataset")
    assert_status(results["data.length"], Status.SKIPPED, "IterableDataset",
                  "len and indexing do not apply")
    assert_status(results["data.samples"], Status.PASSED, "10 samples")
    assert_status(results["data.collate"], Status.PASSED, "3 batch(es) of 4")


# --------------------------------------------------------------------------- data.collate


def test_dataloader_from_the_factory_sets_batch_size_and_drop_last() -> None:
    result = verdict(fx.dataloader_factory, "data.collate", kind="dataset")
    assert_status(result, Status.PASSED, "3 batch(es) of 4", "the last holds 2")

    def dropping() -> DataLoader:
        return DataLoader(fx.TupleSamples(size=10), batch_size=4, drop_last=True)

    result = verdict(dropping, "data.collate", kind="dataset")
    assert_status(result, Status.PASSED, "2 batch(es) of 4", "(drop_last)")


def drop_one(samples: list[Any]) -> Any:
    """BUG: loses the last sample of every batch."""
    return torch.utils.data.default_collate(samples[:-1])


def test_collate_fn_that_loses_samples() -> None:
    def factory() -> dict[str, Any]:
        return {"dataset": fx.TupleSamples(size=8), "batch_size": 4, "collate_fn": drop_one}

    result = verdict(factory, "data.collate", kind="dataset")
    assert_status(result, Status.FAILED, "holds 3 samples, not 4",
                  "one entry per sample along dim 0")
    assert result.file and result.file.endswith("test_checks_data.py")
    assert result.line == line_of("def drop_one", Path(__file__))


def test_batch_sampler_loader_is_iterated() -> None:
    def factory() -> DataLoader:
        return DataLoader(fx.TupleSamples(size=7), batch_sampler=[[0, 1, 2], [3], [4, 5, 6]])

    result = verdict(factory, "data.collate", kind="dataset")
    assert_status(result, Status.PASSED, "3 batch(es) from the batch_sampler")


# --------------------------------------------------------------------------- data.reproducible


def test_unseeded_private_numpy_generator() -> None:
    result = verdict(fx.unseeded_rng, "data.reproducible", kind="dataset")
    assert_status(result, Status.FAILED, "differs between two datasets built by the factory",
                  "dataset.rng is a private numpy.random.Generator",
                  "draw augmentation randomness from torch")
    assert_where(result, "self.rng = np.random.default_rng()  # BUG: unseeded")


def test_unseeded_split_in_init() -> None:
    result = verdict(fx.unseeded_split, "data.reproducible", kind="dataset")
    assert_status(result, Status.FAILED, "differs between two datasets built by the factory",
                  "unseeded generator in __init__")


def test_global_numpy_rng_is_seeded_by_torchvet() -> None:
    result = verdict(fx.global_numpy_augmented, "data.reproducible", kind="dataset")
    assert_status(result, Status.PASSED)


# --------------------------------------------------------------------------- data.model_fit


def test_feature_mismatch_between_data_and_model() -> None:
    result = verdict(fx.feature_mismatch, "data.model_fit")
    assert_status(result, Status.FAILED, "a real batch (args[0]: (4, 6) float32)",
                  "does not fit the model", "mat1 and mat2 shapes cannot be multiplied",
                  "match the model's input layer")
    assert_where(result, "return self.head(self.body(x))")


def test_float64_samples_into_a_float32_model() -> None:
    result = verdict(fx.float64_data, "data.model_fit")
    assert_status(result, Status.FAILED, "args[0] is float64 but the parameters are float32",
                  ".float()")


def test_model_fit_runs_the_step_on_whole_batches() -> None:
    def step(model: torch.nn.Module, batch: Any) -> torch.Tensor:
        x, y = batch
        return torch.nn.functional.cross_entropy(model(x), y)

    def factory() -> dict[str, Any]:
        return {"model": fx.Classifier(), "step": step, "dataset": fx.TupleSamples()}

    result = verdict(factory, "data.model_fit")
    assert_status(result, Status.PASSED, "runs through the step")


def test_model_fit_only_applies_to_models() -> None:
    results = vet(fx.tuple_samples, ["data.model_fit"], kind="dataset")
    assert "data.model_fit" not in results


# --------------------------------------------------------------------------- data.workers


def test_lambda_transform_warns_without_spawning() -> None:
    started = time.perf_counter()
    result = verdict(fx.lambda_transform, "data.workers", kind="dataset")
    assert_status(result, Status.WARNED, "dataset.transform is a lambda",
                  "cannot be pickled", "spawn", "module-level function")
    assert_where(result, "self.transform = lambda x: x * 2.0  # BUG: not picklable")
    assert time.perf_counter() - started < 5, "a pickling failure must not start workers"


def test_lambda_inside_a_transform_pipeline_is_named_by_path() -> None:
    result = verdict(fx.nested_lambda, "data.workers", kind="dataset")
    assert_status(result, Status.WARNED, "dataset.transform.transforms[1] is a lambda")
    assert_where(result, "lambda x: x + 1.0])  # BUG: second step")


def test_lambda_collate_fn_warns() -> None:
    result = verdict(fx.lambda_collate, "data.workers", kind="dataset")
    assert_status(result, Status.WARNED, "the collate_fn is a lambda", "module-level function")


def test_open_file_handle_warns_with_lazy_open_fix(tmp_path: Path) -> None:
    path = tmp_path / "records.bin"
    path.write_bytes(b"\0" * 64)

    def factory() -> Any:
        dataset = fx.TupleSamples(size=4)
        dataset.handle = path.open("rb")  # type: ignore[attr-defined]
        return dataset

    result = verdict(factory, "data.workers", kind="dataset")
    assert_status(result, Status.WARNED, "dataset.handle is an open", "open it lazily")


def test_workers_skip_slow_samples_with_a_reason(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(data_checks, "WORKER_LOAD_BUDGET", 0.0)
    result = verdict(fx.tuple_samples, "data.workers", kind="dataset")
    assert_status(result, Status.SKIPPED, "the dataset and collate_fn pickle",
                  "s each to load", "budget")


def test_workers_skip_large_datasets_with_a_reason(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(data_checks, "WORKER_MAX_BYTES", 16)
    result = verdict(fx.tuple_samples, "data.workers", kind="dataset")
    assert_status(result, Status.SKIPPED, "pickle", "spawn worker comparison is skipped")


@pytest.mark.slow
def test_spawn_workers_match_a_randomly_augmented_dataset() -> None:
    result = verdict(fx.augmented, "data.workers", kind="dataset")
    assert_status(result, Status.PASSED, "a spawn worker in",
                  "its batches match the main-process batches", "[0] random, compared by shape")
    assert result.duration < CATALOGUE["data.workers"].budget


@pytest.mark.slow
def test_spawn_workers_without_the_factorys_global_state() -> None:
    result = verdict(fx.needs_global, "data.workers", kind="dataset")
    assert_status(result, Status.WARNED, "spawn-context DataLoader worker",
                  "AssertionError: VOCABULARY is not loaded", "state its pickle does not carry")
    assert_where(result, 'assert VOCABULARY is not None, "VOCABULARY is not loaded"')


@pytest.mark.slow
def test_spawn_workers_see_different_values() -> None:
    result = verdict(fx.reads_mutated_global, "data.workers", kind="dataset")
    assert_status(result, Status.WARNED, "dataset[0][0] differs between spawn workers and the "
                  "main process")


@pytest.mark.slow
def test_spawn_workers_on_a_stream() -> None:
    result = verdict(fx.stream, "data.workers", kind="dataset")
    assert_status(result, Status.PASSED, "its stream batch has the same layout")


@pytest.mark.slow
def test_spawn_workers_import_the_dataset_from_the_projects_import_roots(
        tmp_path: Path) -> None:
    project = FIXTURES / "data_project"
    with pytest.raises(ImportError):
        __import__("vetdata")  # only the project's src/ root makes it importable
    report = tmp_path / "report.json"
    proc = run_cli("run", str(project), "--checks", "data.workers", "-j", "1",
                   "--exclude", "stuck_pairs", "--json", str(report))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    results = {
        unit["name"]: {r["id"]: r for r in unit["results"]}
        for unit in json.loads(report.read_text())["reports"]
    }
    pairs = results["pairs"]["data.workers"]
    assert pairs["status"] == "passed", pairs
    # forked from the run's fork server (torch imported, no project module), not spawned
    assert "a fresh (spawn-like) worker in" in pairs["message"]
    assert pairs["duration"] < 2.0, "the fresh worker should cost a fork, not import torch"
    scaled = results["global_pairs"]["data.workers"]
    assert scaled["status"] == "warned", scaled
    assert "AssertionError: SCALE is not set" in scaled["message"]
    assert "state its pickle does not carry" in scaled["message"]
    lam = results["lambda_pairs"]["data.workers"]
    assert lam["status"] == "warned", lam
    assert "dataset.transform is a lambda" in lam["message"]
    source = project / "src" / "vetdata" / "__init__.py"
    assert lam["file"] == "tests/fixtures/data_project/src/vetdata/__init__.py"
    assert lam["line"] == line_of("transform=lambda x: x / 10", source)


# --------------------------------------------------------------------------- scan and verdicts


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


def test_same_seed_gives_identical_verdicts() -> None:
    for factory in (fx.unseeded_rng, fx.nan_sample, fx.one_based_declared, fx.augmented):
        first = vet(factory, CHEAP, kind="dataset")
        second = vet(factory, CHEAP, kind="dataset")
        assert {k: (r.status, r.message) for k, r in first.items()} == {
            k: (r.status, r.message) for k, r in second.items()
        }


def test_seed_changes_inputs_not_healthy_verdicts() -> None:
    for seed in (0, 1, 7):
        results = vet(fx.augmented, CHEAP, kind="dataset", seed=seed)
        assert all(r.status is Status.PASSED for r in results.values()), {
            k: r.message for k, r in results.items()
        }


# --------------------------------------------------------------------------- data_batches


def test_label_key_and_split_sample() -> None:
    assert label_key({"input_ids": 1, "labels": 2}, None) == "labels"
    assert label_key((1, 2, 3), None) == 2
    assert label_key({"x": 1}, None) is None
    assert label_key({"x": 1, "cls": 2}, "cls") == "cls"
    assert split_sample({"x": 1, "label": 2}, "label") == ({"x": 1}, 2)
    assert split_sample((1, 2, 3), 0) == ((2, 3), 1)
    assert split_sample((1, 2), 1) == (1, 2)


def test_batches_and_sources_work_on_streams() -> None:
    data = DataSpec(dataset=fx.Stream(size=5), batch_size=2)
    assert is_iterable(data.dataset)
    assert not is_iterable(fx.TupleSamples())
    batch = batch_at(data, 3, 4)  # cycles past the end of the stream
    assert batch[1].tolist() == [4 % fx.CLASSES, 0, 1]
    source = DatasetSource(data, seed=0)
    assert source.key() == 1
    inputs = source.make(2)
    assert inputs.args[0].shape == (2, fx.FEATURES)


def test_dataset_source_batches_are_seeded() -> None:
    data = DataSpec(dataset=fx.Augmented(), batch_size=2)
    one = DatasetSource(data, seed=3).make(2).args[0]
    torch.manual_seed(12345)  # whatever ran before must not matter
    two = DatasetSource(data, seed=3).make(2).args[0]
    assert torch.equal(one, two)


def test_is_default_collate() -> None:
    assert is_default_collate(None)
    assert is_default_collate(torch.utils.data.default_collate)
    assert not is_default_collate(fx.pad_collate)


# --------------------------------------------------------------------------- skip / xfail


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


def test_shared_instance_with_a_generator_seeded_at_import_is_not_a_false_alarm() -> None:
    result = verdict(fx.shared_seeded_instance, "data.reproducible", kind="dataset")
    assert_status(result, Status.PASSED, "shared dataset instance")


def test_shared_instance_with_clock_seeded_noise_fails() -> None:
    result = verdict(fx.shared_clock_noise, "data.reproducible", kind="dataset")
    assert_status(result, Status.FAILED, "differs between two copies of the factory's shared",
                  "do not reach")


@pytest.mark.slow
def test_fork_server_workers_end_with_their_unit(tmp_path: Path) -> None:
    """A DataLoader worker forked by the fork server is outside the unit's process group:
    when a timeout kills the unit, the worker must still go, not linger after the run."""
    pidfile = tmp_path / "worker.pids"
    pidfile.touch()
    proc = run_cli("run", str(FIXTURES / "data_project"), "--checks", "data.workers",
                   "-k", "stuck_pairs", "--timeout", "6", "-j", "1",
                   env={"VETDATA_PIDFILE": str(pidfile)})
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "timed out" in proc.stdout or "timeout" in proc.stdout, proc.stdout
    pids = [int(line) for line in pidfile.read_text().split()]
    assert pids, "the stuck dataset never ran in a worker"
    deadline = time.monotonic() + 5
    alive = pids
    while alive and time.monotonic() < deadline:
        time.sleep(0.2)
        alive = [pid for pid in pids if _alive(pid)]
    assert not alive, f"DataLoader workers outlived the run: {alive}"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")
    return not (stat.exists() and stat.read_text().split()[2] == "Z")
