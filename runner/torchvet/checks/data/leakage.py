"""data.leakage: no validation sample is also a training sample.

A dataset factory may declare its validation split beside the training one
(``{"dataset": train, "validation": val}``). Two common bugs put the same samples in
both: ``random_split`` drawn twice from an unseeded generator (two different
permutations), and oversampling or augmenting before the split (copies of one sample on
both sides). Every sample's input (the label left out) is hashed; a validation input
found among the training inputs is a leak. Real data has a few natural duplicates, so
the check fails only when a clear share of the validation samples is shared.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterator
from typing import Any

import torch

from ...unit.context import CheckContext
from ...unit.data_batches import DataSpec, dataset_length, is_iterable, label_key, split_sample
from ...unit.seeding import derived_seed, seed_everything
from ...verdict import Outcome, Skip, failed, passed
from ..registry import check
from ..shared.data_scan import SCAN_SECONDS, require_data
from .layout import layout, to_tensor

TRAIN_SAMPLES = 8192  # training inputs hashed at most (spread evenly over the set)
VALIDATION_SAMPLES = 1024
LEAK_SHARE = 0.05  # natural duplicates stay below this share of the validation samples
LEAK_MIN = 3


def digest(sample: Any) -> str:
    """A hash of every leaf's value (dtype and shape included)."""
    h = hashlib.blake2b(digest_size=16)
    for leaf in layout(sample).leaves:
        h.update(leaf.path.encode())
        tensor = to_tensor(leaf.value)
        if isinstance(tensor, torch.Tensor):
            flat = tensor.detach().cpu().contiguous().reshape(-1)
            h.update(f"{flat.dtype}{tuple(tensor.shape)}".encode())
            h.update(flat.view(torch.uint8).numpy().tobytes() if flat.numel() else b"")
        else:
            h.update(repr(leaf.value).encode())
    return h.hexdigest()


def _spread(length: int, limit: int) -> list[int]:
    if length <= limit:
        return list(range(length))
    step = length / limit
    return sorted({int(k * step) for k in range(limit)})


def input_digests(ctx: CheckContext, data: DataSpec, limit: int, salt: str,
                  deadline: float) -> Iterator[tuple[int, str]]:
    """(index, digest of the sample's input) for up to ``limit`` samples."""
    dataset = data.dataset
    length = dataset_length(dataset)
    if is_iterable(dataset) or length is None:
        raise Skip(f"{type(dataset).__name__} cannot be indexed: data.leakage compares "
                   "map-style datasets")
    key = None
    for index in _spread(length, limit):
        if time.perf_counter() > deadline:
            return
        seed_everything(derived_seed(ctx.seed, salt, index))
        sample = dataset[index]
        if key is None:
            key = label_key(sample, data.label)
        yield index, digest(split_sample(sample, key)[0])


@check("data.leakage")
def leakage(ctx: CheckContext) -> Outcome:
    data = require_data(ctx)
    if data.validation is None:  # like training.frozen without frozen parameters
        return passed("no validation split declared, so none can leak (a dataset factory "
                      "returning {'dataset': train, 'validation': val} gets them compared)")
    deadline = time.perf_counter() + SCAN_SECONDS
    train: dict[str, int] = {}
    read = 0
    for index, key in input_digests(ctx, data, TRAIN_SAMPLES, "data-sample", deadline):
        train.setdefault(key, index)
        read += 1
    checked, shared = 0, []
    for index, key in input_digests(ctx, data.validation, VALIDATION_SAMPLES,
                                    "data-validation-sample", deadline):
        checked += 1
        if key in train:
            shared.append((index, train[key]))
    if not checked:
        raise Skip("the validation split is empty")
    share = len(shared) / checked
    total = dataset_length(data.dataset)
    sampled = f" (among the {read} of {total} training samples read)" if total and (
        read < total) else ""
    if len(shared) >= LEAK_MIN and share >= LEAK_SHARE:
        j, i = shared[0]
        return failed(
            f"{len(shared)} of {checked} validation samples ({share:.0%}) are also training "
            f"samples{sampled}, e.g. validation[{j}] == dataset[{i}]: validation scores "
            "will be inflated; split once, with one seeded generator (random_split(..., "
            "generator=torch.Generator().manual_seed(0))), and oversample or augment the "
            "training split only, after splitting",
            "\n".join(f"validation[{j}] == dataset[{i}]" for j, i in shared[:20]),
            ctx.where_factory())
    return passed(f"{len(shared)} of {checked} validation inputs occur among the training "
                  f"inputs{sampled}")
