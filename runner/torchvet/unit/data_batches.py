"""Batches from a user's dataset: how to batch and label it (:class:`DataSpec`), reading
samples, collating them and splitting inputs from labels.

Map-style datasets are read by index; an ``IterableDataset`` (or anything that only has
``__iter__``) is read by iterating it. Every function here works with both.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch.utils.data import IterableDataset, default_collate, default_convert

from ..project.config import DEFAULT_BATCH_SIZE
from .inputs import Inputs, InputSource
from .seeding import derived_seed, seed_everything

LABEL_KEYS = ("label", "labels", "target", "targets", "y")


@dataclass
class DataSpec:
    """A dataset (or a loader's dataset) and how to batch and label it."""

    dataset: Any
    loader: Any = None
    batch_size: int = DEFAULT_BATCH_SIZE
    num_classes: int | None = None
    collate_fn: Callable[..., Any] | None = None
    label: str | int | None = None
    max_samples: int = 256
    validation: DataSpec | None = None  # a declared validation split (data.leakage)
    skip: dict[str, str] = field(default_factory=dict)
    xfail: dict[str, str] = field(default_factory=dict)


def is_iterable(dataset: Any) -> bool:
    """A streamed dataset: an ``IterableDataset``, or an object with ``__iter__`` but no
    ``__getitem__``/``__len__``."""
    if isinstance(dataset, IterableDataset):
        return True
    indexable = hasattr(dataset, "__getitem__") and hasattr(dataset, "__len__")
    return not indexable and hasattr(dataset, "__iter__")


def dataset_length(dataset: Any) -> int | None:
    """``len(dataset)`` for a map-style dataset; None for a stream or when len is absent."""
    if is_iterable(dataset):
        return None
    try:
        return len(dataset)
    except TypeError:
        return None


def is_default_collate(fn: Callable[..., Any] | None) -> bool:
    """Whether ``fn`` is torch's own collation (None means default_collate too)."""
    if fn is None:
        return True
    return fn is default_collate or fn is default_convert


def label_key(sample: Any, declared: str | int | None) -> str | int | None:
    """Where the label sits in a sample: the declared key/index, else a guess."""
    if declared is not None:
        return declared
    if isinstance(sample, Mapping):
        return next((k for k in LABEL_KEYS if k in sample), None)
    if isinstance(sample, (tuple, list)) and len(sample) >= 2:
        return len(sample) - 1
    return None


def label_of(sample: Any, key: str | int | None) -> tuple[bool, Any]:
    """(found, value) of the label at ``key`` in ``sample``."""
    if key is None:
        return False, None
    if isinstance(sample, Mapping):
        return (key in sample), sample.get(key)
    if isinstance(sample, (tuple, list)) and isinstance(key, int) and -len(sample) <= key < len(
        sample
    ):
        return True, sample[key]
    return False, None


def label_path(sample: Any, key: str | int | None) -> str:
    """How a verdict writes the label's place in a sample: ``["label"]`` or ``[1]``."""
    if isinstance(sample, Mapping):
        return f'["{key}"]' if isinstance(key, str) else f"[{key!r}]"
    if isinstance(sample, (tuple, list)) and isinstance(key, int):
        return f"[{key % len(sample)}]"
    return f"[{key!r}]"


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
    fn = data.collate_fn or default_collate
    return fn(list(samples))


def stream_samples(dataset: Any, count: int) -> list[Any]:
    """The first ``count`` samples a streamed dataset yields (fewer if it ends)."""
    return list(itertools.islice(iter(dataset), count))


def batch_at(data: DataSpec, batch_size: int, offset: int) -> Any:
    """``batch_size`` consecutive samples starting at ``offset`` (cycling), collated."""
    if is_iterable(data.dataset):
        pool = stream_samples(data.dataset, offset + batch_size)
        if not pool:
            raise IndexError("the dataset yielded no sample")
        samples = [pool[(offset + i) % len(pool)] for i in range(batch_size)]
        return collate(data, samples)
    length = len(data.dataset)
    if length == 0:
        raise IndexError("the dataset is empty")
    samples = [data.dataset[(offset + i) % length] for i in range(batch_size)]
    return collate(data, samples)


def first_sample(data: DataSpec) -> Any:
    if is_iterable(data.dataset):
        found = stream_samples(data.dataset, 1)
        if not found:
            raise IndexError("the dataset yielded no sample")
        return found[0]
    return data.dataset[0]


class DatasetSource(InputSource):
    """Model inputs taken from real batches of the spec's dataset.

    Each batch is read with torch, random and numpy seeded from the batch's coordinates,
    so random augmentation gives the same inputs whichever check asks first.
    """

    def __init__(self, data: DataSpec, seed: int, whole_batch: bool = False) -> None:
        self.data = data
        self.seed = seed
        self.whole_batch = whole_batch
        self.description = f"batches of {type(data.dataset).__name__}"
        self._key: str | int | None = None
        self._key_known = False

    def key(self) -> str | int | None:
        if not self._key_known:
            seed_everything(derived_seed(self.seed, "dataset-key"))
            self._key = label_key(first_sample(self.data), self.data.label)
            self._key_known = True
        return self._key

    def batch(self, batch_size: int, variant: int = 0) -> Any:
        seed_everything(derived_seed(self.seed, "dataset-batch", batch_size, variant))
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
