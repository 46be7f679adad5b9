"""Batches from a user's dataset: collating samples and splitting inputs from labels."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch

from .spec import DataSpec, Inputs, InputSource

LABEL_KEYS = ("label", "labels", "target", "targets", "y")


def label_key(sample: Any, declared: str | int | None) -> str | int | None:
    """Where the label sits in a sample: the declared key/index, else a guess."""
    if declared is not None:
        return declared
    if isinstance(sample, Mapping):
        return next((k for k in LABEL_KEYS if k in sample), None)
    if isinstance(sample, (tuple, list)) and len(sample) >= 2:
        return len(sample) - 1
    return None


def split_sample(sample: Any, key: str | int | None) -> tuple[Any, Any]:
    """(inputs, label) of a sample or a collated batch; label is None when there is none."""
    if key is None:
        return sample, None
    if isinstance(sample, Mapping):
        kwargs = {k: v for k, v in sample.items() if k != key}
        return kwargs, sample.get(key)
    if isinstance(sample, (tuple, list)) and isinstance(key, int):
        index = key % len(sample)
        rest = [v for i, v in enumerate(sample) if i != index]
        return (rest[0] if len(rest) == 1 else tuple(rest)), sample[index]
    return sample, None


def collate(data: DataSpec, samples: Sequence[Any]) -> Any:
    from torch.utils.data import default_collate

    fn = data.collate_fn or default_collate
    return fn(list(samples))


def batch_at(data: DataSpec, batch_size: int, offset: int) -> Any:
    """``batch_size`` consecutive samples starting at ``offset`` (cycling), collated."""
    length = len(data.dataset)
    if length == 0:
        raise IndexError("the dataset is empty")
    samples = [data.dataset[(offset + i) % length] for i in range(batch_size)]
    return collate(data, samples)


class DatasetSource(InputSource):
    """Model inputs taken from real batches of the spec's dataset."""

    def __init__(self, data: DataSpec, seed: int, whole_batch: bool = False) -> None:
        self.data = data
        self.seed = seed
        self.whole_batch = whole_batch
        self.description = f"batches of {type(data.dataset).__name__}"
        self._key: str | int | None = None
        self._key_known = False

    def key(self) -> str | int | None:
        if not self._key_known:
            self._key = label_key(self.data.dataset[0], self.data.label)
            self._key_known = True
        return self._key

    def batch(self, batch_size: int, variant: int = 0) -> Any:
        return batch_at(self.data, batch_size, variant * batch_size)

    def make(self, batch_size: int, variant: int = 0) -> Inputs:
        batch = self.batch(batch_size, variant)
        if self.whole_batch:
            return Inputs.from_user(batch)
        inputs, _ = split_sample(batch, self.key())
        return Inputs.from_user(inputs)


class DatasetTargets:
    """Targets that match :class:`DatasetSource` batches one for one."""

    def __init__(self, source: DatasetSource) -> None:
        self.source = source

    def make(self, batch_size: int, variant: int = 0) -> Any:
        _, label = split_sample(self.source.batch(batch_size, variant), self.source.key())
        if isinstance(label, torch.Tensor) or label is None:
            return label
        return torch.as_tensor(label)
