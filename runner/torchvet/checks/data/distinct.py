"""data.distinct and data.idempotent: the samples differ from each other, and a sample
does not change when it is read again.

A ``__getitem__`` that ignores its index (it reads a cursor, a cached row, a fixed
position) gives one sample over and over: every other check passes on it. A
``__getitem__`` that writes what it computes back into the dataset (an in-place
normalisation of a cached tensor, a transformed value stored back into a list of records)
gives a different sample on every epoch. Both are read off the scan and a few repeated
reads, each seeded as the scan seeds it, so random augmentation drawn from torch,
``random`` or numpy's global RNG reads the same twice.
"""

from __future__ import annotations

import copy
import hashlib
import random
from typing import Any

import torch

from ...unit import optrace
from ...unit.context import CheckContext
from ...unit.data_batches import label_key, split_sample
from ...unit.seeding import derived_seed, seed_everything
from ...unit.text import one_line
from ...verdict import Location, Outcome, Skip, failed, passed
from ..registry import check
from ..shared.data_scan import get_scan, loaded_samples, require_data, where_dataset
from .layout import differences, first_mismatch, layout, same_values, to_tensor
from .loading import private_generators, rng_kind

REREADS = 4  # indices read twice by data.idempotent
NEAR = {"rtol": 1e-5, "atol": 1e-6}


# --------------------------------------------------------------------------- data.distinct


def near(a: Any, b: Any) -> bool:
    """Same layout and values equal up to float noise."""
    la, lb = layout(a), layout(b)
    if differences(la, lb):
        return False
    for leaf in la.leaves:
        other = lb.leaf(leaf.path)
        if other is None:
            return False
        ta, tb = to_tensor(leaf.value), to_tensor(other.value)
        if ta is not None and tb is not None and ta.is_floating_point() and ta.shape == tb.shape:
            if not torch.allclose(ta.double(), tb.double(), equal_nan=True, **NEAR):
                return False
        elif not same_values(leaf.value, other.value):
            return False
    return True


def sameness(ctx: CheckContext) -> str | None:
    """What is alike in every scanned sample (a verdict's message), or None."""
    data = require_data(ctx)
    found = loaded_samples(ctx, get_scan(ctx))
    if len(found) < 3:
        raise Skip(f"only {len(found)} sample(s) loaded: too few to compare")
    (i0, first), (ik, _) = found[0], found[-1]
    if all(near(first, sample) for _, sample in found[1:]):
        return (f"all {len(found)} scanned samples are identical (dataset[{i0}] == "
                f"dataset[{ik}]): __getitem__ ignores its index — it reads other state (a "
                "cursor, a cached row, a fixed position); select the sample with the index "
                "it is given")
    key = label_key(first, data.label)
    inputs = [split_sample(sample, key)[0] for _, sample in found]
    if key is not None and all(near(inputs[0], x) for x in inputs[1:]):
        return (f"the inputs of all {len(found)} scanned samples are identical and only the "
                f"labels differ (dataset[{i0}] and dataset[{ik}]): __getitem__ builds the "
                "input from something other than the index; select it with the index it is "
                "given")
    return None


@check("data.distinct")
def distinct(ctx: CheckContext) -> Outcome:
    alike = sameness(ctx)
    if alike:
        return failed(alike, where=where_dataset(ctx, require_data(ctx).dataset))
    count = len(get_scan(ctx).loaded())
    return passed(f"{count} scanned samples are not all alike")


# --------------------------------------------------------------------------- data.idempotent


def fingerprint(obj: Any, prefix: str = "dataset", depth: int = 0) -> dict[str, Any]:
    """A cheap digest of every attribute (tensors by version counter, which views share,
    so an in-place op on ``self.images[i]`` changes ``self.images``'s)."""
    found: dict[str, Any] = {}
    if depth > 2 or not hasattr(obj, "__dict__"):
        return found
    for name, value in list(vars(obj).items())[:200]:
        path = f"{prefix}.{name}"
        if hasattr(value, "__dict__") and not callable(value) and not isinstance(
                value, torch.Tensor) and not _is_rng(value):
            found.update(fingerprint(value, path, depth + 1))
        else:
            found[path] = _digest(value, 0)
    return found


def _is_rng(value: Any) -> bool:
    return bool(rng_kind(value)) or isinstance(value, random.Random)


def _digest(value: Any, depth: int) -> Any:
    if isinstance(value, torch.Tensor):
        try:
            version = value._version
        except Exception:
            version = -1
        return ("tensor", id(value), version, tuple(value.shape))
    if type(value).__name__ == "ndarray":
        raw = value.tobytes() if value.nbytes <= 1 << 24 else repr(float(value.sum()))
        return ("ndarray", hashlib.blake2b(raw if isinstance(raw, bytes) else raw.encode(),
                                           digest_size=16).hexdigest())
    if _is_rng(value):
        return ("rng",)
    if isinstance(value, (list, tuple)) and depth < 3:
        return (type(value).__name__, len(value),
                tuple(_digest(v, depth + 1) for v in value[:10_000]))
    if isinstance(value, dict) and depth < 3:
        return ("dict", len(value), tuple((repr(k), _digest(v, depth + 1))
                                          for k, v in list(value.items())[:10_000]))
    if value is None or isinstance(value, (bool, int, float, str, bytes)):
        return ("value", repr(value))
    return ("object", id(value))


def _read(ctx: CheckContext, dataset: Any, index: int) -> Any:
    seed_everything(derived_seed(ctx.seed, "data-sample", index))
    return copy.deepcopy(dataset[index])


def _reread_indices(found: list[tuple[int, Any]]) -> list[int]:
    indices = [i for i, _ in found]
    if len(indices) <= REREADS:
        return indices
    step = (len(indices) - 1) / (REREADS - 1)
    return sorted({indices[round(k * step)] for k in range(REREADS)})


@check("data.idempotent")
def idempotent(ctx: CheckContext) -> Outcome:
    data = require_data(ctx)
    scan = get_scan(ctx)
    found = loaded_samples(ctx, scan)
    if scan.streamed:
        raise Skip("an IterableDataset is read by iterating it, not by index")
    dataset = data.dataset
    indices = _reread_indices(found)
    for index in indices:
        before = fingerprint(dataset)
        first = _read(ctx, dataset, index)
        after = fingerprint(dataset)
        try:
            second = _read(ctx, dataset, index)
        except Exception as exc:
            return failed(f"dataset[{index}] loads, but raises {one_line(exc)} when read again: "
                          "__getitem__ consumes or changes what it reads; leave the stored data "
                          "as it is", where=ctx.locator.for_exception(exc) or where_dataset(
                              ctx, dataset))
        mismatch = first_mismatch(first, second)
        if mismatch is None:
            continue
        return _not_idempotent(ctx, dataset, index, mismatch[0], before, after)
    return passed(f"{len(indices)} indices read twice give the same samples")


def _not_idempotent(ctx: CheckContext, dataset: Any, index: int, path: str,
                    before: dict[str, Any], after: dict[str, Any]) -> Outcome:
    symptom = (f"dataset[{index}] read twice, with every RNG seeded alike, gives two different "
               f"samples ({path or 'the sample'} differs)")
    moved = [p for p, digest in after.items() if before.get(p) != digest]
    if moved:
        inplace = _inplace_write(ctx, dataset, index, moved)
        if inplace is not None:
            return failed(
                f"{symptom}: __getitem__ changes the dataset's own data — {inplace[0]}, so each "
                "read starts from what the previous one left; work on a copy (x = "
                "self.data[i] - mean, or .clone() first)", where=inplace[1])
        return failed(
            f"{symptom}: __getitem__ changes {', '.join(moved[:3])} when it reads it, so each "
            "read transforms an already transformed value (and every epoch sees other data); "
            "keep the stored data unchanged and assign the transformed value to a local",
            where=where_dataset(ctx, dataset))
    generators = private_generators(dataset)
    if generators:
        return passed(f"reads of dataset[{index}] differ only through {generators[0][0]}, a "
                      "private random generator (augmentation): nothing in the dataset changes")
    return failed(
        f"{symptom}, and no attribute of the dataset changed: __getitem__ depends on state "
        "outside the dataset (a global counter, a file being written, the clock)",
        where=where_dataset(ctx, dataset))


def _inplace_write(ctx: CheckContext, dataset: Any, index: int, moved: list[str]
                   ) -> tuple[str, Location] | None:
    """The in-place op of a read that writes into one of the ``moved`` tensor attributes."""
    watched = {}
    for path in moved:
        value: Any = dataset
        for part in path.split(".")[1:]:
            value = getattr(value, part, None)
        if isinstance(value, torch.Tensor):
            watched[optrace.storage_of(value)] = path
    if not watched:
        return None
    seed_everything(derived_seed(ctx.seed, "data-sample", index))
    return optrace.trace(lambda: dataset[index], optrace.inplace_into(watched), ctx.locator)
