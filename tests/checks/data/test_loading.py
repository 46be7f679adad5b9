"""data.collate and data.reproducible: batches of the declared size (the partial last
one too) and identical across seeded passes; the collate_fn or the private generator at
fault is named and located."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader

from tests.fixtures import data_fixtures as fx
from tests.helpers import assert_status, assert_where, line_in, verdict, vet
from torchvet.results import Status


def test_padding_collate_fn_makes_ragged_samples_fine() -> None:
    results = vet(fx.padded_text, ["data.samples", "data.collate"], kind="dataset")
    assert_status(results["data.samples"], Status.PASSED, '["input_ids"] vary',
                  "collate_fn batches")
    assert_status(results["data.collate"], Status.PASSED, "3 batch(es) of 4",
                  "the last holds 2")


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
    assert result.file and result.file.endswith(Path(__file__).name)
    assert result.line == line_in(Path(__file__), "def drop_one")


def test_batch_sampler_loader_is_iterated() -> None:
    def factory() -> DataLoader:
        return DataLoader(fx.TupleSamples(size=7), batch_sampler=[[0, 1, 2], [3], [4, 5, 6]])

    result = verdict(factory, "data.collate", kind="dataset")
    assert_status(result, Status.PASSED, "3 batch(es) from the batch_sampler")


def test_random_torch_augmentation_is_reproducible_when_seeded_alike() -> None:
    result = verdict(fx.augmented, "data.reproducible", kind="dataset")
    assert_status(result, Status.PASSED, "identical shuffled batches", "16 samples")


def test_private_generator_seeded_in_init_reproduces_across_runs() -> None:
    result = verdict(fx.seeded_private_rng, "data.reproducible", kind="dataset")
    assert_status(result, Status.PASSED, "built by the factory with the same seed")


def test_unseeded_private_numpy_generator() -> None:
    result = verdict(fx.unseeded_rng, "data.reproducible", kind="dataset")
    assert_status(result, Status.FAILED, "differs between two datasets built by the factory",
                  "dataset.rng is a private numpy.random.Generator",
                  "draw augmentation randomness from torch")
    assert_where(result, "self.rng = np.random.default_rng()  # BUG: unseeded", fx.FIXTURE_FILE)


def test_unseeded_split_in_init() -> None:
    result = verdict(fx.unseeded_split, "data.reproducible", kind="dataset")
    assert_status(result, Status.FAILED, "differs between two datasets built by the factory",
                  "unseeded generator in __init__")


def test_global_numpy_rng_is_seeded_by_torchvet() -> None:
    result = verdict(fx.global_numpy_augmented, "data.reproducible", kind="dataset")
    assert_status(result, Status.PASSED)


def test_shared_instance_with_a_generator_seeded_at_import_is_not_a_false_alarm() -> None:
    result = verdict(fx.shared_seeded_instance, "data.reproducible", kind="dataset")
    assert_status(result, Status.PASSED, "shared dataset instance")


def test_shared_instance_with_clock_seeded_noise_fails() -> None:
    result = verdict(fx.shared_clock_noise, "data.reproducible", kind="dataset")
    assert_status(result, Status.FAILED, "differs between two copies of the factory's shared",
                  "do not reach")
