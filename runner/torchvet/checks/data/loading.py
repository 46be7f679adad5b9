"""data.collate and data.reproducible: the DataLoader's batches come out whole, at the
declared size (the partial last one too), and identical across two passes seeded alike.

A batch that does not collate is explained through the sample layouts; a pass that does
not reproduce names the private random generator the global seeds do not reach.
"""

from __future__ import annotations

import copy
import dataclasses
import random
import traceback
import types
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch.utils.data import DataLoader, RandomSampler

from ...project.config import UnitConfig
from ...unit.context import CheckContext
from ...unit.data_batches import DataSpec, dataset_length, is_default_collate, is_iterable
from ...unit.data_batches import collate as collate_samples
from ...unit.pytree import leaves
from ...unit.seeding import derived_seed, seed_everything
from ...unit.spec import normalize_dataset
from ...unit.text import one_line
from ...verdict import DependencyFailed, Location, Outcome, Skip, failed, passed
from ..registry import check
from ..shared.data_scan import (
    LoadError,
    Scan,
    collate_plan,
    get_scan,
    loaded_samples,
    require_data,
    where_dataset,
)
from .layout import (
    brief,
    difference_fix,
    differences,
    differing_row,
    first_mismatch,
    layout,
    uncollatable,
    uncollatable_fix,
)

np: Any
try:
    import numpy as np
except ImportError:  # pragma: no cover - numpy is installed wherever torch is used with data
    np = None


REPRODUCIBLE_SAMPLES = 32  # samples per pass in data.reproducible

# --------------------------------------------------------------------------- data.collate


def batch_length(batch: Any, expected: int) -> int | None:
    """Samples in a collated batch: ``expected`` if any tensor has it along dim 0 (or dim 1,
    for sequence-first padding), else dim 0 of the first tensor, else its length."""
    tensors = [t for _, t in leaves(batch, "batch") if t.dim() >= 1]
    if any(t.shape[0] == expected for t in tensors):
        return expected
    seq_first = [t for t in tensors if t.dim() >= 2]
    if seq_first and len(seq_first) == len(tensors) and all(
        t.shape[1] == expected for t in seq_first
    ):
        return expected
    if tensors:
        return int(tensors[0].shape[0])
    if isinstance(batch, Mapping):
        lengths = [len(v) for v in batch.values() if isinstance(v, (list, tuple))]
        return expected if expected in lengths else (lengths[0] if lengths else None)
    if isinstance(batch, (list, tuple)):
        return len(batch)
    return None


@check("data.collate")
def collate(ctx: CheckContext) -> Outcome:
    data = require_data(ctx)
    scan = get_scan(ctx)
    loader = data.loader
    if scan.length == 0:
        raise DependencyFailed("not run: the dataset is empty (see data.length)")
    if scan.length is None or (loader is not None and loader.batch_size is None):
        return _collate_by_iteration(ctx, data, scan)
    batch_size = data.batch_size
    drop_last = bool(getattr(loader, "drop_last", False))
    sizes: list[int] = []
    for indices in collate_plan(scan.length, data):
        batch_samples = []
        for index in indices:
            result = scan.try_get(index)
            if isinstance(result, LoadError):
                scan.defer(result, "data.collate")
            batch_samples.append(result)
        span = f"{indices[0]}..{indices[-1]}"
        try:
            batch = collate_samples(data, batch_samples)
        except Exception as exc:
            return _collate_failure(ctx, data, scan, indices, batch_samples, exc)
        got = batch_length(batch, len(indices))
        if got != len(indices):
            return failed(
                f"the batch of samples {span} holds {got} samples, not {len(indices)}: the "
                "collate_fn must keep one entry per sample along dim 0",
                where=_where_collate(ctx, data),
            )
        sizes.append(got)
    if not sizes:
        raise Skip(f"drop_last with {scan.length} samples and batch size {batch_size}: no "
                   "full batch")
    last = sizes[-1]
    partial = scan.length % batch_size
    tail = ("the last holds " + str(last) + (" (drop_last)" if drop_last else "")
            if partial else "no partial batch")
    return passed(f"{len(sizes)} batch(es) of {batch_size} checked, {tail}")


def _where_collate(ctx: CheckContext, data: DataSpec) -> Location:
    if data.collate_fn is not None and not is_default_collate(data.collate_fn):
        found = ctx.locator.for_function(data.collate_fn)
        if found:
            return found
    return where_dataset(ctx, data.dataset)


def _collate_failure(ctx: CheckContext, data: DataSpec, scan: Scan, indices: list[int],
                     batch_samples: list[Any], exc: Exception) -> Outcome:
    default = is_default_collate(data.collate_fn)
    span = f"{indices[0]}..{indices[-1]}"
    reference = layout(batch_samples[0])
    culprit = ""
    fix = ""
    if default:
        for index, sample in zip(indices[1:], batch_samples[1:], strict=True):
            diffs = differences(reference, layout(sample))
            if diffs:
                culprit = diffs[0].text(scan.name(index), scan.name(indices[0]))
                fix = difference_fix(diffs[0], default)
                break
        if not culprit:
            bad = uncollatable(reference)
            if bad is not None:
                culprit = f"{scan.name(indices[0])}{bad.path} is {bad.describe()}"
                fix = uncollatable_fix(bad)
    if culprit:
        message = f"collating samples {span} raised {one_line(exc)}: {culprit}; {fix}"
    elif default:
        message = (f"collating samples {span} with default_collate raised {one_line(exc)}: "
                   "return tensors of one shape per field, or pass a collate_fn")
    else:
        message = (f"the collate_fn raised {one_line(exc)} on samples {span}: fix it for "
                   "these samples")
    return failed(message, traceback.format_exc(),
                  ctx.locator.for_exception(exc) or _where_collate(ctx, data))


def _collate_by_iteration(ctx: CheckContext, data: DataSpec, scan: Scan) -> Outcome:
    loader = data.loader
    if loader is not None and loader.batch_size is None and loader.batch_sampler is None:
        raise Skip("the DataLoader has batch_size=None (automatic batching off): no batches "
                   "to check")
    if loader is not None and loader.batch_size is None:
        # a custom batch_sampler decides the sizes; check that its batches collate
        fresh: Any = DataLoader(loader.dataset, batch_sampler=loader.batch_sampler,
                                collate_fn=loader.collate_fn, num_workers=0)
        expected = None
    else:
        fresh = DataLoader(data.dataset, batch_size=data.batch_size, collate_fn=data.collate_fn,
                           drop_last=bool(getattr(loader, "drop_last", False)), num_workers=0)
        expected = data.batch_size
    seed_everything(derived_seed(ctx.seed, "data.collate"))
    sizes: list[int | None] = []
    try:
        for batch in fresh:
            sizes.append(batch_length(batch, expected or 0))
            if sum(s or 0 for s in sizes) >= data.max_samples:
                break
    except Exception as exc:
        return failed(
            f"iterating the DataLoader raised {one_line(exc)} after {len(sizes)} batch(es): "
            "every batch must load and collate",
            traceback.format_exc(),
            ctx.locator.for_exception(exc) or where_dataset(ctx, data.dataset),
        )
    if not sizes:
        if scan.streamed:
            raise DependencyFailed("not run: the dataset yielded no sample (see data.samples)")
        return failed("the DataLoader yielded no batch: the dataset is empty")
    if expected is None:
        return passed(f"{len(sizes)} batch(es) from the batch_sampler collate")
    wrong = [i for i, s in enumerate(sizes[:-1]) if s != expected]
    if wrong:
        return failed(
            f"batch {wrong[0]} holds {sizes[wrong[0]]} samples, not the declared {expected}: "
            "the collate_fn must keep one entry per sample along dim 0",
            where=_where_collate(ctx, data),
        )
    return passed(f"{len(sizes)} batch(es) of {expected}, the last holds {sizes[-1]}")


# --------------------------------------------------------------------------- data.reproducible


@dataclass
class Pass:
    """The first batches of one seeded pass over a freshly built dataset."""

    batches: list[Any]
    indices: list[list[int]]  # dataset indices, or stream positions
    length: int | None
    streamed: bool


class PassError(Exception):
    """Loading or collating failed during a seeded pass."""

    def __init__(self, stage: str, indices: list[int], error: BaseException) -> None:
        super().__init__(str(error))
        self.stage, self.indices, self.error = stage, indices, error
        self.details = traceback.format_exc()


def _fresh_data(ctx: CheckContext) -> DataSpec | None:
    """The dataset of a new factory call (None when that is impossible)."""
    data = require_data(ctx)
    obj = ctx.build()
    if ctx.spec is not None:
        raw = obj.get("dataset") if isinstance(obj, Mapping) else getattr(obj, "dataset", None)
        if raw is None:
            return None
    else:
        raw = obj
    fresh, _ = normalize_dataset(raw, UnitConfig(batch_size=data.batch_size,
                                                  max_samples=data.max_samples))
    if fresh.collate_fn is None:
        fresh.collate_fn = data.collate_fn
    fresh.batch_size = data.batch_size
    return fresh


def _one_pass(ctx: CheckContext, data: DataSpec) -> Pass:
    """The first batches of a shuffled pass (a RandomSampler drawing from torch's seeded
    RNG, as DataLoader(shuffle=True) does), loaded and collated in this process."""
    batch_size = max(1, data.batch_size)
    count = max(1, min(8, REPRODUCIBLE_SAMPLES // batch_size))
    seed_everything(derived_seed(ctx.seed, "data.reproducible"))
    dataset = data.dataset
    size = dataset_length(dataset)
    streamed = is_iterable(dataset) or size is None
    source: Iterator[Any] = iter(dataset) if streamed else iter(RandomSampler(dataset))
    position = 0
    batches: list[Any] = []
    indices: list[list[int]] = []
    for _ in range(count):
        chunk: list[Any] = []
        chunk_indices: list[int] = []
        for _ in range(batch_size):
            index = position
            try:
                item = next(source)
                if not streamed:
                    index = int(item)
                    item = dataset[index]
            except StopIteration:
                break
            except Exception as exc:
                raise PassError("load", [index], exc) from exc
            position += 1
            chunk.append(item)
            chunk_indices.append(index)
        if not chunk:
            break
        try:
            batches.append(collate_samples(data, chunk))
        except Exception as exc:
            raise PassError("collate", chunk_indices, exc) from exc
        indices.append(chunk_indices)
    return Pass(batches, indices, size, streamed)


def private_generators(obj: Any, prefix: str = "dataset", depth: int = 0
                       ) -> list[tuple[str, Any, Any, str]]:
    """(path, owner, attribute, type) of RNGs the global seeds do not reach."""
    found: list[tuple[str, Any, Any, str]] = []
    if depth > 2 or not hasattr(obj, "__dict__") or isinstance(obj, (type, types.ModuleType)):
        return found
    for name, value in list(vars(obj).items())[:200]:
        kind = rng_kind(value)
        if kind:
            found.append((f"{prefix}.{name}", obj, name, kind))
        elif hasattr(value, "__dict__") and not callable(value):
            found.extend(private_generators(value, f"{prefix}.{name}", depth + 1))
        elif isinstance(value, (list, tuple)):
            for i, item in enumerate(value[:20]):
                found.extend(private_generators(item, f"{prefix}.{name}[{i}]", depth + 1))
    return found


def rng_kind(value: Any) -> str:
    if np is not None and isinstance(value, (np.random.Generator, np.random.RandomState)):
        return f"numpy.random.{type(value).__name__}"
    if isinstance(value, torch.Generator):
        return "torch.Generator"
    if isinstance(value, random.Random) and value is not getattr(random, "_inst", None):
        return "random.Random"
    return ""


@check("data.reproducible")
def reproducible(ctx: CheckContext) -> Outcome:
    data = require_data(ctx)
    scan = get_scan(ctx)
    loaded_samples(ctx, scan)
    how = "two datasets built by the factory with the same seed"
    try:
        first_data = _fresh_data(ctx)
        second_data = _fresh_data(ctx)
    except Exception:
        first_data = second_data = None
    if first_data is None or second_data is None:
        first_data = second_data = data
    if first_data.dataset is second_data.dataset:
        # one shared instance (or a factory that cannot be called again): compare two
        # copies taken from the same state, so that a generator seeded once at import is
        # not mistaken for an unseeded one
        how = "two copies of the factory's shared dataset instance, seeded alike"
        first_data = _copied(first_data)
        second_data = _copied(second_data)
    try:
        first = _one_pass(ctx, first_data)
        second = _one_pass(ctx, second_data)
    except PassError as exc:
        return _pass_failure(ctx, scan, exc)
    if first.length != second.length:
        return failed(
            f"the factory built datasets of {first.length} and then {second.length} samples "
            "with the same seed: the dataset's contents depend on unseeded randomness (a "
            "random split, an unseeded generator, a set's order); seed them",
            where=ctx.where_factory(),
        )
    for k, (a, b) in enumerate(zip(first.batches, second.batches, strict=False)):
        mismatch = first_mismatch(a, b)
        if mismatch is None and first.indices[k] == second.indices[k]:
            continue
        return _not_reproducible(ctx, second_data, scan, k, first, second, mismatch, how)
    if len(first.batches) != len(second.batches):
        return failed(f"{how} yielded {len(first.batches)} and {len(second.batches)} batches")
    total = sum(len(i) for i in first.indices)
    return passed(f"{how} gave identical shuffled batches ({len(first.batches)} batches, "
                  f"{total} samples)")


def _copied(data: DataSpec) -> DataSpec:
    try:
        return dataclasses.replace(data, dataset=copy.deepcopy(data.dataset))
    except Exception:
        return data


def _pass_failure(ctx: CheckContext, scan: Scan, exc: PassError) -> Outcome:
    """A seeded pass failed: skip naming the check that owns the failure, or report a
    failure no other check saw (a sample outside the scan)."""
    if exc.stage == "collate":
        raise DependencyFailed(f"not run: collating a shuffled batch raised "
                               f"{one_line(exc.error)} (see data.samples, data.collate)")
    index = exc.indices[0]
    if index in scan.errors:
        scan.defer(scan.errors[index], "data.reproducible")
    if isinstance(exc.error, IndexError) and scan.length:
        last = scan.try_get(scan.length - 1)
        if isinstance(last, LoadError):
            scan.defer(last, "data.reproducible")
    return failed(
        f"{scan.name(index)} raised {one_line(exc.error)} during a shuffled pass: every "
        "sample must load; fix the data or __getitem__ for this sample",
        exc.details,
        ctx.locator.for_exception(exc.error) or where_dataset(ctx, scan.dataset),
    )


def _not_reproducible(ctx: CheckContext, data: DataSpec, scan: Scan, k: int, first: Pass,
                      second: Pass, mismatch: tuple[str, Any, Any] | None, how: str) -> Outcome:
    indices = first.indices[k]
    if first.indices[k] != second.indices[k]:
        return failed(f"batch {k} holds samples {first.indices[k]} in one pass and "
                      f"{second.indices[k]} in the other: the shuffle is not reproducible")
    path = mismatch[0] if mismatch else ""
    who = f"batch {k}{path}" + (" of the stream" if first.streamed else "")
    if mismatch is not None and indices:
        row = differing_row(mismatch[1], mismatch[2], len(indices))
        if row is not None:
            who = f"{scan.name(indices[row])}{path} (in shuffled batch {k})"
    generators = private_generators(data.dataset)
    where: Location = None
    if generators:
        gpath, owner, attr, kind = generators[0]
        culprit = (f"{gpath} is a private {kind}, which torch.manual_seed, random.seed and "
                   "np.random.seed do not reach: draw augmentation randomness from torch "
                   "(torch.rand, torch.randint), or seed it (e.g. from torch.initial_seed() in a "
                   "worker_init_fn)")
        where = ctx.locator.for_attribute(owner, attr)
    else:
        culprit = ("the dataset draws randomness that torch.manual_seed, random.seed and "
                   "np.random.seed do not reach (an unseeded generator in __init__ or "
                   "__getitem__, time, os.urandom, a set's order); draw it from torch's RNG or "
                   "seed it")
    details = ""
    if mismatch is not None:
        details = (f"first difference at batch {k}{path}:\n  one run:   {brief(mismatch[1])}\n"
                   f"  other run: {brief(mismatch[2])}")
    return failed(
        f"{who} differs between {how}: {culprit}",
        details,
        where or where_dataset(ctx, data.dataset),
    )
