"""unit.data_batches: reading, collating and labelling batches of a user's dataset, the
same for map-style datasets and streams, seeded per batch."""

from __future__ import annotations

import torch

from tests.fixtures import data_fixtures as fx
from torchvet.unit.data_batches import (
    DatasetSource,
    DataSpec,
    batch_at,
    is_default_collate,
    is_iterable,
    label_key,
    split_sample,
)


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
