"""data.*: datasets that load, batch, label and reproduce the way training assumes.

Every data check reads samples through one memoised :class:`Scan`: up to ``max_samples``
samples (the first half of the budget from the start, the last batches the DataLoader
would make, the rest spread evenly over the dataset), each loaded with torch, random
and numpy seeded from its index, so a verdict does not depend on which checks ran
before it. A sample that fails to load is one check's to report: an ``IndexError``, or
any error at the last index, belongs to ``data.length``; any other error to
``data.samples``. The other checks work with the samples that loaded, or skip naming
the owner.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import functools
import io
import math
import os
import pickle
import sys
import time
import traceback
import types
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from ..unit import fresh_process
from ..unit.context import CheckContext
from ..unit.data_batches import (
    DatasetSource,
    dataset_length,
    is_default_collate,
    is_iterable,
    label_key,
    label_of,
    label_path,
    split_sample,
    stream_samples,
)
from ..unit.data_batches import collate as collate_samples
from ..unit.pytree import floating_leaves, leaves, primary_leaf
from ..unit.seeding import seed_everything
from ..unit.spec import DataSpec, Inputs, derived_seed
from .base import DependencyFailed, Location, Outcome, Skip, check, failed, passed, warned
from .forward import one_line, shape_str

np: Any
try:
    import numpy as np
except ImportError:  # pragma: no cover - numpy is installed wherever torch is used with data
    np = None

SCAN_SECONDS = 20.0  # wall-clock budget of the sample scan (the rest is spread evenly)
REPRODUCIBLE_SAMPLES = 32  # samples per pass in data.reproducible
WORKERS = 1  # one interpreter importing torch is the cost; a second adds CPU, not coverage
WORKER_TIMEOUT = 45.0  # seconds a spawn worker may take for its batch (torch import included)
WORKER_LOAD_BUDGET = 20.0  # estimated in-worker loading time above which data.workers skips
WORKER_MAX_BYTES = 32 * 2**20  # pickled dataset size above which data.workers skips
CLASS_LOSSES = (nn.CrossEntropyLoss, nn.NLLLoss)
FLOAT_TARGET_LOSSES = (
    nn.BCELoss, nn.BCEWithLogitsLoss, nn.MSELoss, nn.L1Loss, nn.SmoothL1Loss, nn.HuberLoss,
    nn.KLDivLoss, nn.MultiLabelSoftMarginLoss, nn.SoftMarginLoss, nn.PoissonNLLLoss,
    nn.GaussianNLLLoss,
)
PROBABILITY_LOSSES = (nn.BCELoss, nn.BCEWithLogitsLoss)
DEFAULT_IGNORE_INDEX = -100  # CrossEntropyLoss's default; Hugging Face pads labels with it


# --------------------------------------------------------------------------- samples


@dataclass(frozen=True)
class Leaf:
    """One value in a sample, with its path (``["input_ids"]``, ``[0]``) and layout."""

    path: str
    kind: str  # tensor, ndarray, int, float, bool, complex, str, bytes, None, list, object
    dtype: str = ""
    shape: tuple[int, ...] = ()
    value: Any = field(default=None, compare=False, repr=False)

    def describe(self) -> str:
        if self.kind in ("tensor", "ndarray"):
            name = "Tensor" if self.kind == "tensor" else "ndarray"
            return f"{name}{shape_str(self.shape)} {self.dtype}"
        if self.kind == "list":
            return f"list of {self.shape[0]} {self.dtype}"
        if self.kind == "object":
            return self.dtype
        return self.kind


@dataclass
class Layout:
    """A sample's containers (path -> description) and leaves, in a stable order."""

    containers: dict[str, str]
    leaves: list[Leaf]

    def leaf(self, path: str) -> Leaf | None:
        return next((leaf for leaf in self.leaves if leaf.path == path), None)

    def describe(self) -> str:
        if len(self.leaves) == 1 and not self.containers:
            return self.leaves[0].describe()
        return ", ".join(f"{leaf.path or 'sample'}: {leaf.describe()}" for leaf in self.leaves)


def _dtype_name(dtype: Any) -> str:
    return str(dtype).replace("torch.", "")


def _key_path(key: Any) -> str:
    return f'["{key}"]' if isinstance(key, str) else f"[{key!r}]"


def _number_kind(value: Any) -> str | None:
    if isinstance(value, bool) or (np is not None and isinstance(value, np.bool_)):
        return "bool"
    if isinstance(value, int) or (np is not None and isinstance(value, np.integer)):
        return "int"
    if isinstance(value, float) or (np is not None and isinstance(value, np.floating)):
        return "float"
    if isinstance(value, complex) or (np is not None and isinstance(value, np.complexfloating)):
        return "complex"
    return None


def layout(sample: Any) -> Layout:
    """The containers and leaves of ``sample`` (lists of numbers are one leaf)."""
    containers: dict[str, str] = {}
    found: list[Leaf] = []

    def visit(obj: Any, path: str, depth: int) -> None:
        if isinstance(obj, torch.Tensor):
            found.append(Leaf(path, "tensor", _dtype_name(obj.dtype), tuple(obj.shape), obj))
            return
        if np is not None and isinstance(obj, np.ndarray):
            found.append(Leaf(path, "ndarray", str(obj.dtype), tuple(obj.shape), obj))
            return
        kind = _number_kind(obj)
        if kind is not None:
            found.append(Leaf(path, kind, kind, (), obj))
            return
        if obj is None or isinstance(obj, (str, bytes)):
            found.append(Leaf(path, type(obj).__name__, type(obj).__name__, (), obj))
            return
        if depth > 8:
            found.append(Leaf(path, "object", _qualname(type(obj)), (), obj))
            return
        if isinstance(obj, Mapping):
            keys = sorted(obj, key=str)
            containers[path] = f"{type(obj).__name__}({', '.join(map(str, keys))})"
            for key in keys:
                visit(obj[key], path + _key_path(key), depth + 1)
            return
        if isinstance(obj, list) and obj and all(_number_kind(v) for v in obj):
            kinds = {_number_kind(v) for v in obj}
            elem = "float" if "float" in kinds else kinds.pop() or "int"
            found.append(Leaf(path, "list", str(elem), (len(obj),), obj))
            return
        if isinstance(obj, (list, tuple)):
            containers[path] = f"{type(obj).__name__} of {len(obj)}"
            for i, child in enumerate(obj):
                visit(child, f"{path}[{i}]", depth + 1)
            return
        if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
            names = [f.name for f in dataclasses.fields(obj)]
            containers[path] = f"{type(obj).__name__}({', '.join(names)})"
            for name in names:
                visit(getattr(obj, name), f"{path}.{name}", depth + 1)
            return
        found.append(Leaf(path, "object", _qualname(type(obj)), (), obj))

    visit(sample, "", 0)
    return Layout(containers, found)


def _qualname(cls: type) -> str:
    if cls.__module__ in ("builtins", "__main__"):
        return cls.__qualname__
    return f"{cls.__module__}.{cls.__qualname__}"


@dataclass
class Difference:
    """How one sample departs from the reference sample."""

    path: str
    what: str  # structure, kind, dtype, shape
    mine: str
    reference: str

    def text(self, name: str, ref_name: str) -> str:
        if self.what == "shape":
            return (f"{name}{self.path} has shape {self.mine} but {ref_name}{self.path} has "
                    f"{self.reference}")
        return f"{name}{self.path} is {self.mine} but {ref_name}{self.path} is {self.reference}"


def differences(reference: Layout, other: Layout) -> list[Difference]:
    """Structure, kind, dtype and shape differences, outermost first."""
    found: list[Difference] = []
    for path in sorted(set(reference.containers) | set(other.containers), key=len):
        mine, ref = other.containers.get(path), reference.containers.get(path)
        if mine != ref and not any(path.startswith(d.path) for d in found):
            found.append(Difference(path, "structure", mine or _leaf_desc(other, path),
                                    ref or _leaf_desc(reference, path)))
    broken = [d.path for d in found]
    for ref_leaf in reference.leaves:
        if any(ref_leaf.path.startswith(p) for p in broken):
            continue
        leaf = other.leaf(ref_leaf.path)
        if leaf is None:
            continue
        if leaf.kind != ref_leaf.kind:
            found.append(Difference(leaf.path, "kind", leaf.describe(), ref_leaf.describe()))
        elif leaf.dtype != ref_leaf.dtype:
            what = "dtype" if leaf.kind in ("tensor", "ndarray") else "kind"
            found.append(Difference(leaf.path, what, leaf.describe(), ref_leaf.describe()))
        elif leaf.shape != ref_leaf.shape:
            found.append(Difference(leaf.path, "shape", shape_str(leaf.shape),
                                    shape_str(ref_leaf.shape)))
    return found


def _leaf_desc(lay: Layout, path: str) -> str:
    leaf = lay.leaf(path)
    return leaf.describe() if leaf else "absent"


def _to_tensor(value: Any) -> torch.Tensor | None:
    if isinstance(value, torch.Tensor):
        return value
    try:
        if np is not None and isinstance(value, (np.ndarray, np.generic)):
            return torch.as_tensor(np.asarray(value))
        if _number_kind(value) is not None or (
            isinstance(value, list) and all(_number_kind(v) for v in value)
        ):
            return torch.as_tensor(value)
    except (TypeError, ValueError, RuntimeError):
        return None
    return None


# --------------------------------------------------------------------------- the scan


@dataclass
class LoadError:
    index: int
    error: BaseException
    details: str


class Scan:
    """Samples read once per unit and shared by the data checks (see the module doc)."""

    def __init__(self, ctx: CheckContext, data: DataSpec) -> None:
        self.ctx = ctx
        self.data = data
        self.dataset = data.dataset
        self.streamed = is_iterable(self.dataset)
        self.length = dataset_length(self.dataset)
        self.samples: dict[int, Any] = {}
        self.errors: dict[int, LoadError] = {}
        self.scanned: list[int] = []
        self.load_seconds = 0.0
        self.loads = 0
        self.note = ""

    # -- reading ------------------------------------------------------------------
    def name(self, index: int) -> str:
        return f"sample #{index}" if self.streamed else f"dataset[{index}]"

    def get(self, index: int) -> Any:
        """``dataset[index]`` read with every RNG seeded from the index (cached)."""
        if index in self.samples:
            return self.samples[index]
        if index in self.errors:
            raise self.errors[index].error
        seed_everything(derived_seed(self.ctx.seed, "data-sample", index))
        started = time.perf_counter()
        try:
            sample = self.dataset[index]
        except Exception as exc:
            self.errors[index] = LoadError(index, exc, traceback.format_exc())
            raise
        finally:
            self.load_seconds += time.perf_counter() - started
            self.loads += 1
        self.samples[index] = sample
        return sample

    def try_get(self, index: int) -> Any | LoadError:
        try:
            return self.get(index)
        except Exception:
            return self.errors[index]

    @property
    def seconds_per_sample(self) -> float:
        return self.load_seconds / self.loads if self.loads else 0.0

    def loaded(self) -> list[tuple[int, Any]]:
        return [(i, self.samples[i]) for i in self.scanned if i in self.samples]

    def run(self) -> None:
        if self.streamed:
            self._run_stream()
        elif self.length is None:
            self._run_unsized()
        else:
            self._run_indexed(self.length)

    def _run_indexed(self, length: int) -> None:
        started = time.perf_counter()
        for index in scan_indices(length, self.data):
            if time.perf_counter() - started > SCAN_SECONDS:
                self.note = (f"the scan stopped after {len(self.scanned)} samples: its "
                             f"{SCAN_SECONDS:.0f} s budget ran out")
                break
            self.scanned.append(index)
            self.try_get(index)

    def _run_unsized(self) -> None:
        for index in range(self.data.max_samples):
            result = self.try_get(index)
            if isinstance(result, LoadError) and isinstance(result.error, IndexError):
                del self.errors[index]
                break
            self.scanned.append(index)

    def _run_stream(self) -> None:
        seed_everything(derived_seed(self.ctx.seed, "data-stream"))
        started = time.perf_counter()
        try:
            iterator = iter(self.dataset)
        except Exception as exc:
            self.errors[0] = LoadError(0, exc, traceback.format_exc())
            self.scanned.append(0)
            return
        for index in range(self.data.max_samples):
            if time.perf_counter() - started > SCAN_SECONDS:
                self.note = f"the scan stopped after {index} samples: its time budget ran out"
                break
            try:
                sample = next(iterator)
            except StopIteration:
                break
            except Exception as exc:
                self.errors[index] = LoadError(index, exc, traceback.format_exc())
                self.scanned.append(index)
                break
            self.samples[index] = sample
            self.scanned.append(index)
        self.loads = len(self.scanned)
        self.load_seconds = time.perf_counter() - started

    # -- ownership of load errors -------------------------------------------------
    def owner_of(self, failure: LoadError) -> str:
        """The check that reports this load failure."""
        last = self.length - 1 if self.length else None
        if isinstance(failure.error, IndexError) or failure.index == last:
            return "data.length"
        return "data.samples"

    def defer(self, failure: LoadError, current: str) -> None:
        """Raise a skip naming the owner of ``failure`` unless ``current`` owns it."""
        owner = self.owner_of(failure)
        if owner != current:
            raise DependencyFailed(
                f"not run: {self.name(failure.index)} raised {one_line(failure.error)} "
                f"(see {owner})"
            )


def collate_plan(length: int, data: DataSpec) -> list[list[int]]:
    """The sequential batches data.collate checks: those in the first half of the sample
    budget, then the last full batch and the partial one, so the tail is always checked."""
    batch_size = max(1, data.batch_size)
    drop_last = bool(getattr(data.loader, "drop_last", False))
    starts = list(range(0, length, batch_size))
    if drop_last and length % batch_size:
        starts = starts[:-1]
    head = max(1, (data.max_samples // 2) // batch_size)
    chosen = starts[:head] + [s for s in starts[-2:] if s not in starts[:head]]
    return [list(range(s, min(s + batch_size, length))) for s in chosen]


def scan_indices(length: int, data: DataSpec) -> list[int]:
    """Indices the scan reads: all of a small dataset; else the first half of the budget,
    the batches data.collate checks and an even spread over the rest, the last included."""
    budget = max(1, data.max_samples)
    if length <= budget:
        return list(range(length))
    chosen = set(range(budget // 2)) | {length - 1}
    for batch in collate_plan(length, data):
        chosen.update(batch)
    room = budget - len(chosen)
    if room > 0:
        start, stop = budget // 2, length - 1
        step = (stop - start) / (room + 1)
        chosen.update(int(start + step * (k + 1)) for k in range(room))
    return sorted(chosen)


def require_data(ctx: CheckContext) -> DataSpec:
    if ctx.data is None:
        raise Skip("no dataset declared")
    return ctx.data


def get_scan(ctx: CheckContext) -> Scan:
    data = require_data(ctx)

    def compute() -> Scan:
        scan = Scan(ctx, data)
        scan.run()
        return scan

    return ctx.memo(("data", "scan"), compute)


def loaded_samples(ctx: CheckContext, scan: Scan) -> list[tuple[int, Any]]:
    """The scanned samples that loaded; a skip naming the owner when none did."""
    found = scan.loaded()
    if found:
        return found
    if scan.length == 0:
        raise DependencyFailed("not run: the dataset is empty (see data.length)")
    if scan.errors:
        failure = scan.errors[min(scan.errors)]
        scan.defer(failure, ctx.current_check)
    raise DependencyFailed("not run: the dataset yielded no sample (see data.samples)")


# --------------------------------------------------------------------------- locations


def where_dataset(ctx: CheckContext, dataset: Any, method: str = "__getitem__") -> Location:
    """The dataset's ``method`` (if the project defines it), else its class, else the
    factory."""
    for cls in type(dataset).__mro__:
        if method in vars(cls):
            found = ctx.locator.for_function(vars(cls)[method])
            if found:
                return found
            break
    return ctx.locator.for_object(dataset) or ctx.where_factory()


def where_load(ctx: CheckContext, failure: LoadError, dataset: Any) -> Location:
    return ctx.locator.for_exception(failure.error) or where_dataset(ctx, dataset)


# --------------------------------------------------------------------------- data.length


@check("data.length")
def length(ctx: CheckContext) -> Outcome:
    data = require_data(ctx)
    scan = get_scan(ctx)
    dataset = data.dataset
    if scan.streamed:
        raise Skip(f"{type(dataset).__name__} is an IterableDataset: it streams samples, so "
                   "len and indexing do not apply (data.samples checks that it yields any)")
    if scan.length is None:
        raise Skip(f"{type(dataset).__name__} has no __len__: the length checks need one")
    size = scan.length
    where_len = where_dataset(ctx, dataset, "__len__")
    if size == 0:
        return failed(
            f"len({type(dataset).__name__}) is 0: the dataset is empty; check the data path, "
            "the split and any filtering in __init__",
            where=where_len,
        )
    last = scan.try_get(size - 1)
    if isinstance(last, LoadError):
        return _overlong(ctx, scan, last, where_len)
    inner = sorted(i for i, e in scan.errors.items() if isinstance(e.error, IndexError))
    if inner:
        failure = scan.errors[inner[0]]
        return failed(
            f"dataset[{failure.index}] raised {one_line(failure.error)} although "
            f"{failure.index} < len(dataset) = {size}: __len__ counts samples that "
            "__getitem__ cannot load, or __getitem__ indexes past the end of a list; make "
            "both agree on the samples that exist",
            failure.details,
            where_load(ctx, failure, dataset),
        )
    where_get = where_dataset(ctx, dataset, "__getitem__")
    seed_everything(derived_seed(ctx.seed, "data-sample", size))
    try:
        dataset[size]
    except (IndexError, StopIteration):
        return passed(f"len {size}; dataset[{size - 1}] loads and dataset[{size}] raises "
                      "IndexError")
    except Exception as exc:
        return warned(
            f"dataset[{size}] (index len) raised {one_line(exc)} instead of IndexError: "
            "`for sample in dataset` crashes instead of stopping; raise IndexError when "
            "index >= len(self)",
            traceback.format_exc(),
            where_get,
        )
    return failed(
        f"dataset[{size}] (index len) returned a sample instead of raising IndexError: a "
        "`for sample in dataset` loop never ends (iteration stops only at IndexError); "
        "raise IndexError when index >= len(self) instead of wrapping around (index % len)",
        where=where_get,
    )


def _overlong(ctx: CheckContext, scan: Scan, last: LoadError, where_len: Location) -> Outcome:
    size = scan.length or 0
    loadable = _loadable_prefix(scan, size) if isinstance(last.error, IndexError) else None
    if loadable is not None:
        detail = (f"; only the first {loadable} samples load (dataset[{loadable}] is the first "
                  "that fails)")
        where = where_len
    else:
        detail = ""
        where = where_load(ctx, last, scan.dataset)
    return failed(
        f"len(dataset) is {size} but the last index dataset[{size - 1}] raised "
        f"{one_line(last.error)}{detail}: make __len__ return the number of samples that "
        "exist (e.g. len(self.items))",
        last.details,
        where,
    )


def _loadable_prefix(scan: Scan, size: int) -> int | None:
    """How many samples load before the first IndexError (binary search), if the dataset
    fails as an overlong one does: a loadable prefix, then IndexError."""
    if isinstance(scan.try_get(0), LoadError):
        return 0 if isinstance(scan.errors[0].error, IndexError) else None
    lo, hi = 0, size - 1  # lo loads, hi fails
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if isinstance(scan.try_get(mid), LoadError):
            hi = mid
        else:
            lo = mid
    failure = scan.errors.get(hi)
    return hi if failure is not None and isinstance(failure.error, IndexError) else None


# --------------------------------------------------------------------------- data.samples


@check("data.samples")
def samples(ctx: CheckContext) -> Outcome:
    data = require_data(ctx)
    scan = get_scan(ctx)
    if scan.length == 0:
        raise DependencyFailed("not run: the dataset is empty (see data.length)")
    own = [e for i, e in sorted(scan.errors.items()) if scan.owner_of(e) == "data.samples"]
    if own:
        failure = own[0]
        others = ", ".join(scan.name(e.index) for e in own[1:6])
        return failed(
            f"{scan.name(failure.index)} raised {one_line(failure.error)}: every sample must "
            "load; fix the data or __getitem__ for this sample"
            + (f" (also failing: {others})" if others else ""),
            failure.details,
            where_load(ctx, failure, data.dataset),
        )
    found = scan.loaded()
    if not found:
        if scan.streamed:
            return failed(
                f"iterating {type(data.dataset).__name__} yielded no sample: the stream is "
                "empty; check the data source and __iter__",
                where=where_dataset(ctx, data.dataset, "__iter__"),
            )
        for index in sorted(scan.errors):
            scan.defer(scan.errors[index], "data.samples")
        raise DependencyFailed("not run: no sample loaded (see data.length)")
    default = is_default_collate(data.collate_fn)
    ref_index, ref_sample = found[0]
    reference = layout(ref_sample)
    ref_name = scan.name(ref_index)
    if default:
        bad = _uncollatable(reference)
        if bad is not None:
            return failed(
                f"{ref_name}{bad.path} is {bad.describe()}, which default_collate cannot "
                f"batch: {_uncollatable_fix(bad)}",
                where=where_dataset(ctx, data.dataset),
            )
    fatal: list[tuple[int, Difference]] = []
    tolerated: dict[str, list[str]] = {}
    for index, sample in found[1:]:
        for diff in differences(reference, layout(sample)):
            if default or diff.what == "dtype":
                fatal.append((index, diff))
            else:
                tolerated.setdefault(diff.path or "sample", []).append(diff.mine)
    skipped_note = _deferred_note(scan)
    if fatal:
        index, diff = fatal[0]
        more = "\n".join(d.text(scan.name(i), ref_name) for i, d in fatal[:20])
        return failed(
            f"{diff.text(scan.name(index), ref_name)}: {_difference_fix(diff, default)}",
            f"differences from {ref_name} ({len(fatal)} in {len(found)} samples):\n{more}",
            where_dataset(ctx, data.dataset),
        )
    summary = f"{len(found)} samples share one layout ({reference.describe()})"
    if tolerated:
        varying = ", ".join(sorted(tolerated))
        summary = (f"{len(found)} samples share their dtypes; {varying} vary across samples, "
                   "which the collate_fn batches (see data.collate)")
    return passed(summary + skipped_note, scan.note)


def _deferred_note(scan: Scan) -> str:
    others = [e for _, e in sorted(scan.errors.items()) if scan.owner_of(e) != "data.samples"]
    if not others:
        return ""
    return f" ({scan.name(others[0].index)} does not load: see data.length)"


def _uncollatable(lay: Layout) -> Leaf | None:
    return next((leaf for leaf in lay.leaves if leaf.kind in ("object", "NoneType")), None)


def _uncollatable_fix(leaf: Leaf) -> str:
    if leaf.kind == "NoneType":
        return ("return a tensor instead (an empty or all-zero one for a missing value), drop "
                "the key, or pass a collate_fn that handles missing values")
    if "Image" in leaf.dtype:
        return ("convert it to a tensor in __getitem__ (torchvision.transforms.ToTensor() "
                "or PILToTensor()), or pass a collate_fn")
    return ("return tensors, numpy arrays, numbers or strings from __getitem__, or pass a "
            "collate_fn that batches this type")


def _difference_fix(diff: Difference, default: bool) -> str:
    if diff.what == "dtype":
        return ("samples of one field must share a dtype (stacking them promotes the batch); "
                "convert in __getitem__ (e.g. .float() or .long())")
    if diff.what == "shape":
        return ("default_collate cannot stack samples of different shapes; pad or crop them to "
                "one size in __getitem__, or pass a collate_fn that pads (e.g. "
                "torch.nn.utils.rnn.pad_sequence(..., batch_first=True)) as 'collate_fn' in "
                "the factory's dict or to the DataLoader")
    return ("every sample must have the same fields and types for default_collate; return one "
            "structure from __getitem__, or pass a collate_fn that handles the variation")


# --------------------------------------------------------------------------- data.finite


@check("data.finite")
def finite(ctx: CheckContext) -> Outcome:
    data = require_data(ctx)
    scan = get_scan(ctx)
    found = loaded_samples(ctx, scan)
    bad: list[tuple[int, str, int, int, int]] = []  # index, path, nan, inf, numel
    checked = 0
    for index, sample in found:
        for leaf in layout(sample).leaves:
            counts = _nonfinite(leaf)
            if counts is None:
                continue
            checked += 1
            nan, inf, numel = counts
            if nan or inf:
                bad.append((index, leaf.path, nan, inf, numel))
    if not bad:
        if not checked:
            return passed(f"no floating values in {len(found)} samples")
        return passed(f"no NaN/Inf in the floating values of {len(found)} samples", scan.note)
    index, path, nan, inf, numel = bad[0]
    what = " and ".join(p for p in (f"{nan} NaN" if nan else "", f"{inf} Inf" if inf else "")
                        if p)
    rows = "\n".join(
        f"{scan.name(i)}{p}: {n} NaN, {f} Inf of {m} values" for i, p, n, f, m in bad[:20]
    )
    others = f" ({len(bad)} fields in {len({b[0] for b in bad})} samples)" if len(bad) > 1 else ""
    return failed(
        f"{scan.name(index)}{path} contains {what} (of {numel} values){others}: clean the "
        "source data or replace missing values in __getitem__ (torch.nan_to_num, imputation), "
        "or drop the sample",
        f"non-finite values in {len(found)} scanned samples:\n{rows}",
        where_dataset(ctx, data.dataset),
    )


def _nonfinite(leaf: Leaf) -> tuple[int, int, int] | None:
    """(NaN count, Inf count, values) of a floating leaf; None for other leaves."""
    value = leaf.value
    if leaf.kind in ("float", "complex"):
        number = complex(value)
        nan = int(math.isnan(number.real) or math.isnan(number.imag))
        return nan, int(not nan and not math.isfinite(abs(number))), 1
    if leaf.kind == "list" and leaf.dtype == "float":
        values = [float(v) for v in value]
        return (sum(math.isnan(v) for v in values), sum(math.isinf(v) for v in values),
                len(values))
    if leaf.kind in ("tensor", "ndarray"):
        tensor = _to_tensor(value)
        if tensor is None or not (tensor.is_floating_point() or tensor.is_complex()):
            return None
        if tensor.is_complex():
            tensor = torch.view_as_real(tensor)
        nan = int(torch.isnan(tensor).sum())
        inf = int(torch.isinf(tensor).sum())
        return nan, inf, tensor.numel()
    return None


# --------------------------------------------------------------------------- data.labels


@dataclass
class LabelRule:
    """What the labels must be: a class range, a loss's expectations."""

    num_classes: int | None = None
    source: str = ""  # where num_classes came from
    loss: Any = None
    ignore_index: int = DEFAULT_IGNORE_INDEX

    @property
    def loss_name(self) -> str:
        return type(self.loss).__name__ if self.loss is not None else ""

    @property
    def class_indices(self) -> bool:
        """Integer class ids are required (CE/NLL, or num_classes without a float loss)."""
        if isinstance(self.loss, CLASS_LOSSES):
            return True
        return self.num_classes is not None and not isinstance(self.loss, FLOAT_TARGET_LOSSES)

    def reason(self) -> str:
        if isinstance(self.loss, CLASS_LOSSES):
            return f"the {self.loss_name} in the spec"
        return f"num_classes={self.num_classes} ({self.source})"


def label_rule(ctx: CheckContext, data: DataSpec) -> LabelRule:
    rule = LabelRule()
    spec = ctx.spec
    if spec is not None and spec.loss is not None:
        rule.loss = spec.loss
        rule.ignore_index = int(getattr(spec.loss, "ignore_index", DEFAULT_IGNORE_INDEX))
    if data.num_classes:
        rule.num_classes, rule.source = int(data.num_classes), "declared"
    elif spec is not None and spec.num_classes:
        rule.num_classes, rule.source = int(spec.num_classes), "declared"
    elif isinstance(rule.loss, CLASS_LOSSES):
        classes = _classes_from_output(ctx)
        if classes:
            rule.num_classes, rule.source = classes, "the model's (B, C) output"
    return rule


def _classes_from_output(ctx: CheckContext) -> int | None:
    try:
        output = ctx.eval_output()
    except Exception:
        return None
    primary = primary_leaf(output)
    if primary is None or primary[1].dim() < 2:
        return None
    return int(primary[1].shape[1])


@check("data.labels")
def labels(ctx: CheckContext) -> Outcome:
    data = require_data(ctx)
    scan = get_scan(ctx)
    found = loaded_samples(ctx, scan)
    key = label_key(found[0][1], data.label)
    hint = ("declare where it is: 'label': 'my_key' (or a tuple index) in the factory's dict, "
            "or label = ... in [tool.torchvet.datasets.<name>]")
    if key is None:
        raise Skip(f"no label in the samples ({layout(found[0][1]).describe()}); {hint}")
    values: list[tuple[int, torch.Tensor]] = []
    first_sample = found[0][1]
    path = label_path(first_sample, key)
    for index, sample in found:
        present, value = label_of(sample, key)
        if not present:
            continue
        if isinstance(value, str) or (
            isinstance(value, list) and value and isinstance(value[0], str)
        ):
            return _string_labels(ctx, data, scan, index, path, value)
        tensor = _to_tensor(value)
        if tensor is None:
            raise Skip(f"the label {scan.name(index)}{path} is {layout(value).describe()}, not "
                       f"a number or tensor: not checked as class labels; {hint}")
        values.append((index, tensor))
    if not values:
        raise Skip(f"no sample has the label {path}; {hint}")
    rule = label_rule(ctx, data)
    where = where_dataset(ctx, data.dataset)
    if any(t.is_floating_point() or t.is_complex() for _, t in values):
        return _float_labels(scan, rule, values, path, where)
    return _integer_labels(scan, rule, values, path, where)


def _string_labels(ctx: CheckContext, data: DataSpec, scan: Scan, index: int, path: str,
                   value: Any) -> Outcome:
    rule = label_rule(ctx, data)
    if not rule.class_indices:
        raise Skip(f"the labels {path} are strings ({value!r} at {scan.name(index)}): not "
                   "checked; declare num_classes to require class ids")
    return failed(
        f"{scan.name(index)}{path} is the string {value!r}: {rule.reason()} needs integer class "
        "ids; map class names to ids in __getitem__ (e.g. self.class_to_idx[name])",
        where=where_dataset(ctx, data.dataset),
    )


def _float_labels(scan: Scan, rule: LabelRule, values: list[tuple[int, torch.Tensor]],
                  path: str, where: Location) -> Outcome:
    index, tensor = next((i, t) for i, t in values if t.is_floating_point() or t.is_complex())
    name = f"{scan.name(index)}{path}"
    classes = rule.num_classes
    soft = classes is not None and all(t.dim() >= 1 and t.shape[-1] == classes for _, t in values)
    if isinstance(rule.loss, PROBABILITY_LOSSES) or soft:
        low = min(float(t.min()) for _, t in values if t.numel())
        high = max(float(t.max()) for _, t in values if t.numel())
        if low < 0 or high > 1:
            at = next(i for i, t in values if t.numel() and (t.min() < 0 or t.max() > 1))
            return failed(
                f"{scan.name(at)}{path} holds values outside [0, 1] (range [{low:g}, {high:g}]): "
                f"{'the ' + rule.loss_name if rule.loss is not None else 'class probabilities'} "
                "need targets in [0, 1]; scale or one-hot encode the labels",
                where=where,
            )
        return passed(f"float labels {path} in [{low:g}, {high:g}] across {len(values)} "
                      "samples (probability targets)", scan.note)
    if not rule.class_indices:
        raise Skip(f"the labels {path} are {_dtype_name(tensor.dtype)}: regression targets, "
                   "not checked as classes; declare num_classes (or use CrossEntropyLoss) to "
                   "require integer class ids")
    sample_value = _show(tensor)
    whole = bool(torch.all(tensor == torch.round(tensor))) if not tensor.is_complex() else False
    fix = ("return it as an integer: torch.tensor(label, dtype=torch.long) or int(label)"
           if whole else
           "values like these are not class ids: if this is a regression target, drop "
           "num_classes and use a regression loss")
    return failed(
        f"{name} is a {_dtype_name(tensor.dtype)} label ({sample_value}): {rule.reason()} "
        f"needs integer (int64) class ids; {fix}",
        where=where,
    )


def _show(tensor: torch.Tensor) -> str:
    flat = tensor.flatten()
    if flat.numel() == 1:
        return repr(flat[0].item())
    shown = ", ".join(f"{v:g}" for v in flat[:4].tolist())
    return f"shape {shape_str(tuple(tensor.shape))}: {shown}{', ...' if flat.numel() > 4 else ''}"


def _integer_labels(scan: Scan, rule: LabelRule, values: list[tuple[int, torch.Tensor]],
                    path: str, where: Location) -> Outcome:
    low: tuple[int, int] | None = None  # (value, sample index)
    high: tuple[int, int] | None = None
    seen_zero = False
    distinct: set[int] = set()
    for index, tensor in values:
        kept = tensor.flatten().long()
        kept = kept[kept != rule.ignore_index]
        if kept.numel() == 0:
            continue
        mn, mx = int(kept.min()), int(kept.max())
        if low is None or mn < low[0]:
            low = (mn, index)
        if high is None or mx > high[0]:
            high = (mx, index)
        seen_zero = seen_zero or bool((kept == 0).any())
        if len(distinct) < 64:
            distinct.update(int(v) for v in kept.unique()[:64].tolist())
    if low is None or high is None:
        raise Skip(f"every label {path} equals the ignore index {rule.ignore_index}")
    classes = rule.num_classes
    count = len(values)
    if isinstance(rule.loss, PROBABILITY_LOSSES):
        return failed(
            f"{scan.name(values[0][0])}{path} is an integer label but the {rule.loss_name} "
            "needs float targets in [0, 1]: return torch.tensor(label, dtype=torch.float32)",
            where=where,
        )
    if classes is not None:
        if high[0] >= classes and low[0] >= 1 and high[0] == classes:
            return failed(
                f"labels run 1..{classes} ({scan.name(high[1])}{path} = {high[0]}) but "
                f"{rule.reason()} needs them in [0, {classes}): they look 1-based; subtract 1 "
                f"in __getitem__ (or declare num_classes={classes + 1} if class 0 exists)",
                where=where,
            )
        if high[0] >= classes:
            return failed(
                f"{scan.name(high[1])}{path} = {high[0]} is outside [0, {classes}) "
                f"({rule.reason()}): fix the labels or num_classes",
                where=where,
            )
        if low[0] < 0:
            return failed(
                f"{scan.name(low[1])}{path} = {low[0]} is negative: {rule.reason()} needs "
                f"labels in [0, {classes}) (only the ignore_index {rule.ignore_index} may mark "
                "positions to skip); fix the labels",
                where=where,
            )
        return passed(f"labels {path} lie in [{low[0]}, {high[0]}] within [0, {classes}) across "
                      f"{count} samples", scan.note)
    if low[0] == 1 and not seen_zero and len(distinct) >= 2:
        return warned(
            f"labels {path} run {low[0]}..{high[0]} and no sample of {count} has label 0: they "
            "look 1-based, and CrossEntropyLoss expects 0..C-1; subtract 1 in __getitem__, or "
            "declare num_classes to check the range exactly",
            where=where,
        )
    return passed(f"integer labels {path} in [{low[0]}, {high[0]}] across {count} samples "
                  "(declare num_classes to check the upper bound)", scan.note)


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
                fix = _difference_fix(diffs[0], default)
                break
        if not culprit:
            bad = _uncollatable(reference)
            if bad is not None:
                culprit = f"{scan.name(indices[0])}{bad.path} is {bad.describe()}"
                fix = _uncollatable_fix(bad)
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
    from torch.utils.data import DataLoader

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
    from ..project.config import UnitConfig
    from ..unit.spec import normalize_dataset

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
    from torch.utils.data import RandomSampler

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


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor):
        if a.shape != b.shape or a.dtype != b.dtype:
            return False
        if a.is_floating_point() or a.is_complex():
            return bool(torch.equal(a, b) or torch.allclose(a, b, rtol=0, atol=0, equal_nan=True))
        return bool(torch.equal(a, b))
    if np is not None and isinstance(a, np.ndarray) and isinstance(b, np.ndarray):
        return bool(a.shape == b.shape and np.array_equal(a, b, equal_nan=a.dtype.kind in "fc"))
    try:
        return bool(a == b) or (a != a and b != b)
    except Exception:
        return a is b


def first_mismatch(a: Any, b: Any) -> tuple[str, Any, Any] | None:
    """(path, a's leaf, b's leaf) of the first leaf that differs, else None."""
    la, lb = layout(a), layout(b)
    diffs = differences(la, lb)
    if diffs:
        d = diffs[0]
        return d.path, d.reference, d.mine
    for leaf in la.leaves:
        other = lb.leaf(leaf.path)
        if other is None or not _same(leaf.value, other.value):
            return leaf.path, leaf.value, other.value if other is not None else None
    return None


def _differing_row(a: Any, b: Any, rows: int) -> int | None:
    if (isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor) and a.shape == b.shape
            and a.dim() >= 1 and a.shape[0] == rows):
        for r in range(rows):
            if not _same(a[r], b[r]):
                return r
    return None


def private_generators(obj: Any, prefix: str = "dataset", depth: int = 0
                       ) -> list[tuple[str, Any, Any, str]]:
    """(path, owner, attribute, type) of RNGs the global seeds do not reach."""
    found: list[tuple[str, Any, Any, str]] = []
    if depth > 2 or not hasattr(obj, "__dict__") or isinstance(obj, (type, types.ModuleType)):
        return found
    for name, value in list(vars(obj).items())[:200]:
        kind = _rng_kind(value)
        if kind:
            found.append((f"{prefix}.{name}", obj, name, kind))
        elif hasattr(value, "__dict__") and not callable(value):
            found.extend(private_generators(value, f"{prefix}.{name}", depth + 1))
        elif isinstance(value, (list, tuple)):
            for i, item in enumerate(value[:20]):
                found.extend(private_generators(item, f"{prefix}.{name}[{i}]", depth + 1))
    return found


def _rng_kind(value: Any) -> str:
    import random

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
        row = _differing_row(mismatch[1], mismatch[2], len(indices))
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
        details = (f"first difference at batch {k}{path}:\n  one run:   {_brief(mismatch[1])}\n"
                   f"  other run: {_brief(mismatch[2])}")
    return failed(
        f"{who} differs between {how}: {culprit}",
        details,
        where or where_dataset(ctx, data.dataset),
    )


def _brief(value: Any) -> str:
    if isinstance(value, torch.Tensor):
        flat = value.flatten()[:6].tolist()
        return f"Tensor{shape_str(tuple(value.shape))} {_dtype_name(value.dtype)} {flat}..."
    text = repr(value)
    return text if len(text) < 200 else text[:200] + "..."


# --------------------------------------------------------------------------- data.workers


class _CountingSink(io.RawIOBase):
    """A file that only counts the bytes written to it."""

    def __init__(self) -> None:
        self.size = 0

    def writable(self) -> bool:
        return True

    def write(self, b: Any) -> int:
        n = len(memoryview(b).cast("B"))
        self.size += n
        return n


def pickled_size(obj: Any) -> int:
    sink = _CountingSink()
    pickle.Pickler(sink, protocol=pickle.HIGHEST_PROTOCOL).dump(obj)
    return sink.size


def _picklable(obj: Any) -> bool:
    try:
        pickled_size(obj)
    except Exception:
        return False
    return True


def find_unpicklable(obj: Any, path: str, depth: int = 0
                     ) -> tuple[str, Any, Any, str | None]:
    """(path, culprit, owner, attribute) of the innermost value that does not pickle."""
    children: list[tuple[str, Any, str | None]] = []
    if depth < 6:
        if isinstance(obj, Mapping):
            children = [(f"{path}[{k!r}]", v, None) for k, v in list(obj.items())[:200]]
        elif isinstance(obj, (list, tuple, set, frozenset)):
            children = [(f"{path}[{i}]", v, None) for i, v in enumerate(list(obj)[:200])]
        elif isinstance(obj, functools.partial):
            children = [(f"{path}.func", obj.func, None)]
            children += [(f"{path}.args[{i}]", v, None) for i, v in enumerate(obj.args)]
            children += [(f"{path}.keywords[{k!r}]", v, None) for k, v in obj.keywords.items()]
        elif isinstance(obj, types.MethodType):
            children = [(f"{path}.__self__", obj.__self__, None)]
        elif hasattr(obj, "__dict__") and not isinstance(obj, (type, types.FunctionType,
                                                               types.ModuleType)):
            children = [(f"{path}.{k}", v, k) for k, v in list(vars(obj).items())[:200]]
    for child_path, child, attr in children:
        if not _picklable(child):
            inner = find_unpicklable(child, child_path, depth + 1)
            if inner[2] is None and attr is not None:
                return inner[0], inner[1], obj, attr
            return inner
    return path, obj, None, None


def describe_culprit(value: Any) -> tuple[str, str]:
    """(what it is, how to fix it) for a value that does not pickle."""
    module_level = ("replace it with a module-level function, functools.partial of one, or "
                    "an instance of a module-level callable class")
    if isinstance(value, types.FunctionType):
        if value.__name__ == "<lambda>":
            return "a lambda", module_level
        if "<locals>" in value.__qualname__:
            outer = value.__qualname__.split(".<locals>")[0]
            return f"the function {value.__name__} defined inside {outer}()", module_level
        return f"the function {value.__qualname__}", module_level
    if isinstance(value, types.GeneratorType):
        return "a generator", "store the data (a list) or a factory for the generator instead"
    if isinstance(value, io.IOBase) or type(value).__name__ in ("File", "Environment",
                                                                 "Connection", "socket"):
        return (f"an open {_qualname(type(value))}",
                "open it lazily in __getitem__ (or in worker_init_fn) instead of __init__, and "
                "drop it in __getstate__")
    cls = type(value)
    if "<locals>" in cls.__qualname__:
        return (f"an instance of {cls.__qualname__}, a class defined inside a function",
                "define the class at module level")
    if cls.__module__ == "__main__":
        return (f"an instance of {cls.__qualname__} from __main__",
                "move the class into an importable module")
    return (f"a {_qualname(cls)}", "make it picklable (define __getstate__/__setstate__) or "
            "create it lazily in __getitem__/worker_init_fn")


@dataclass
class PickleProblem:
    what: str  # "the dataset", "the collate_fn", ...
    path: str
    culprit: Any
    owner: Any
    attr: str | None
    error: BaseException


def pickle_problem(parts: Sequence[tuple[str, str, Any]]) -> tuple[PickleProblem | None, int]:
    """The first of (what, path, obj) that does not pickle, and the total pickled size."""
    total = 0
    for what, path, obj in parts:
        try:
            total += pickled_size(obj)
        except Exception as exc:
            inner_path, culprit, owner, attr = find_unpicklable(obj, path)
            return PickleProblem(what, inner_path, culprit, owner, attr, exc), total
    return None, total


@contextlib.contextmanager
def project_on_path(ctx: CheckContext) -> Iterator[None]:
    """The project's import roots (``ctx.factory.sys_path``) on sys.path while spawn
    children start. Spawn hands the parent's sys.path to each child before it unpickles
    the dataset (multiprocessing's preparation data), so this is what lets the children
    import the dataset's module; the child's sys.path is replaced wholesale at that step,
    so PYTHONPATH would not add anything."""
    added = [p for p in ctx.factory.sys_path if p and p not in sys.path]
    sys.path[:0] = added
    try:
        yield
    finally:
        for entry in added:
            with contextlib.suppress(ValueError):
                sys.path.remove(entry)


@check("data.workers")
def workers(ctx: CheckContext) -> Outcome:
    data = require_data(ctx)
    scan = get_scan(ctx)
    loaded_samples(ctx, scan)
    loader = data.loader
    worker_init = getattr(loader, "worker_init_fn", None)
    parts: list[tuple[str, str, Any]] = [("the dataset", "dataset", data.dataset)]
    if not is_default_collate(data.collate_fn):
        parts.append(("the collate_fn", "collate_fn", data.collate_fn))
    if worker_init is not None:
        parts.append(("the worker_init_fn", "worker_init_fn", worker_init))
    problem, size = pickle_problem(parts)
    if problem is not None:
        return _pickle_warning(ctx, data, problem)
    if size > WORKER_MAX_BYTES:
        raise Skip(f"the dataset and collate_fn pickle ({size / 2**20:.0f} MiB); the spawn "
                   f"worker comparison is skipped: over {WORKER_MAX_BYTES // 2**20} MiB, sending "
                   "it to workers exceeds the check's budget")
    indices = _worker_batches(scan, data)
    estimate = scan.seconds_per_sample * sum(len(b) for b in indices)
    if estimate > WORKER_LOAD_BUDGET:
        raise Skip(f"the dataset and collate_fn pickle; the spawn worker comparison is skipped: "
                   f"samples take {scan.seconds_per_sample:.2f} s each to load, so its batches "
                   f"would take about {estimate:.0f} s (budget {WORKER_LOAD_BUDGET:.0f} s)")
    return _spawn_compare(ctx, data, scan, indices, worker_init, size)


def _pickle_warning(ctx: CheckContext, data: DataSpec, problem: PickleProblem) -> Outcome:
    what, fix = describe_culprit(problem.culprit)
    subject = f"the {problem.path}" if problem.path in ("collate_fn", "worker_init_fn") else (
        problem.path)
    where: Location = None
    if isinstance(problem.culprit, types.FunctionType):
        where = ctx.locator.for_function(problem.culprit)
    if where is None and problem.owner is not None and problem.attr is not None:
        where = ctx.locator.for_attribute(problem.owner, problem.attr)
    return warned(
        f"{subject} is {what}, which cannot be pickled: DataLoader workers started with spawn "
        "(the default on macOS and Windows) receive the dataset by pickle and fail; " + fix,
        f"{problem.what} does not pickle: {one_line(problem.error)}\n"
        f"culprit: {problem.path} = {_brief(problem.culprit)}",
        where or where_dataset(ctx, data.dataset),
    )


def _worker_batches(scan: Scan, data: DataSpec) -> list[list[int]]:
    """One small batch per worker, from the samples the scan loaded."""
    batch_size = max(1, data.batch_size)
    if scan.streamed:
        return []
    loadable = [i for i, _ in scan.loaded()]
    first, second = loadable[:batch_size], loadable[batch_size:2 * batch_size]
    return [b for b in (first, second) if b]


def _spawn_compare(ctx: CheckContext, data: DataSpec, scan: Scan, indices: list[list[int]],
                   worker_init: Any, size: int) -> Outcome:
    from torch.utils.data import DataLoader

    dataset = pickle.loads(pickle.dumps(data.dataset, protocol=pickle.HIGHEST_PROTOCOL))
    batch_size = max(1, data.batch_size)
    fresh, kind = fresh_process.context()
    if fresh_process.uses_fork_server(fresh):
        worker_init = fresh_process.ExitWithUnit(os.getpid(), worker_init)
    if scan.streamed:
        loader: Any = DataLoader(dataset, batch_size=batch_size, collate_fn=data.collate_fn,
                                 num_workers=WORKERS, multiprocessing_context=fresh,
                                 timeout=WORKER_TIMEOUT, worker_init_fn=worker_init)
    else:
        loader = DataLoader(dataset, batch_sampler=indices, collate_fn=data.collate_fn,
                            num_workers=WORKERS, multiprocessing_context=fresh,
                            timeout=WORKER_TIMEOUT, worker_init_fn=worker_init)
    started = time.perf_counter()
    got: list[Any] = []
    iterator = None
    try:
        with project_on_path(ctx):
            iterator = iter(loader)
            for batch in iterator:
                got.append(batch)
                if scan.streamed and len(got) >= 1:
                    break
    except Exception as exc:
        return _worker_failure(ctx, data, exc, time.perf_counter() - started)
    finally:
        _stop_workers(iterator)
    seconds = time.perf_counter() - started
    timing = f"a {kind} worker in {seconds:.1f} s"
    if scan.streamed:
        if not got:
            return warned(f"spawn workers yielded no batch from the stream ({timing}), though "
                          "the main process reads samples: the stream depends on state its "
                          "pickle does not carry")
        expected = collate_samples(data, stream_samples(data.dataset, batch_size))
        mismatch = differences(layout(expected), layout(got[0]))
        if mismatch:
            return warned(
                f"spawn workers return batches laid out differently: "
                f"{mismatch[0].text('worker batch', 'main-process batch')}",
                where=where_dataset(ctx, data.dataset),
            )
        return passed(f"the dataset pickles ({_size(size)}); {timing}: its stream batch has the "
                      "same layout (values compared by layout only)")
    return _compare_worker_batches(ctx, data, scan, indices, got, timing, size)


def _stop_workers(iterator: Any) -> None:
    """End the loader's workers now: the batches are in, so a graceful exit (each worker
    tearing down its interpreter while the loader joins it) would only add seconds."""
    for process in getattr(iterator, "_workers", []):
        with contextlib.suppress(Exception):
            if process.is_alive():
                process.terminate()
    shutdown = getattr(iterator, "_shutdown_workers", None)
    if shutdown is not None:
        with contextlib.suppress(Exception):
            shutdown()


def _compare_worker_batches(ctx: CheckContext, data: DataSpec, scan: Scan,
                            indices: list[list[int]], got: list[Any], timing: str,
                            size: int) -> Outcome:
    if len(got) != len(indices):
        return warned(f"spawn workers returned {len(got)} batches for {len(indices)} requested")
    for k, (batch_indices, batch) in enumerate(zip(indices, got, strict=True)):
        seed_everything(derived_seed(ctx.seed, "data.workers", k, 0))
        one = collate_samples(data, [data.dataset[i] for i in batch_indices])
        seed_everything(derived_seed(ctx.seed, "data.workers", k, 1))
        two = collate_samples(data, [data.dataset[i] for i in batch_indices])
        expected, again, actual = layout(one), layout(two), layout(batch)
        random_paths = {leaf.path for leaf in expected.leaves
                        if not _same(leaf.value, _leaf_value(again, leaf.path))}
        diffs = differences(expected, actual)
        if diffs:
            return warned(
                f"in spawn workers, batch {batch_indices} comes out differently: "
                f"{diffs[0].text('the worker batch', 'the main-process batch')}; the dataset "
                "depends on state its pickle does not carry (a global set by the factory, a "
                "lazily opened file)",
                where=where_dataset(ctx, data.dataset),
            )
        for leaf in expected.leaves:
            if leaf.path in random_paths:
                continue
            other = actual.leaf(leaf.path)
            if other is not None and not _same(leaf.value, other.value):
                row = _differing_row(leaf.value, other.value, len(batch_indices))
                who = (f"dataset[{batch_indices[row]}]" if row is not None
                       else f"batch {batch_indices}")
                return warned(
                    f"{who}{leaf.path} differs between spawn workers and the main process: the "
                    "dataset depends on state its pickle does not carry (a global set by the "
                    "factory, module state changed after import); keep that state on the "
                    "dataset or rebuild it in __setstate__",
                    f"main process: {_brief(leaf.value)}\nworker:       {_brief(other.value)}",
                    where_dataset(ctx, data.dataset),
                )
    note = (f" ({', '.join(sorted(random_paths))} random, compared by shape)"
            if random_paths else "")
    return passed(f"the dataset and collate_fn pickle ({_size(size)}); {timing}: its batches "
                  f"match the main-process batches{note}")


def _size(count: int) -> str:
    if count < 1024:
        return f"{count} bytes"
    if count < 2**20:
        return f"{count / 1024:.0f} KiB"
    return f"{count / 2**20:.1f} MiB"


def _leaf_value(lay: Layout, path: str) -> Any:
    leaf = lay.leaf(path)
    return leaf.value if leaf is not None else None


def _worker_failure(ctx: CheckContext, data: DataSpec, exc: BaseException, seconds: float
                    ) -> Outcome:
    text = str(exc)
    where = ctx.locator.in_text(text) or ctx.locator.for_exception(exc)
    if "bootstrapping phase" in text:
        message = ("spawn DataLoader workers re-ran the main script, which started processes "
                   "again: guard the script's top-level code with "
                   "`if __name__ == \"__main__\":` (spawn imports the main module in each worker)")
    elif "exited unexpectedly" in text:
        message = ("a spawn-context DataLoader worker (macOS/Windows default) exited before "
                   "loading a batch: usually it cannot import or unpickle the dataset in a "
                   "fresh interpreter (its traceback is in the unit's captured output); the "
                   "dataset's class and everything it references must be importable there")
    elif "timed out" in text:
        message = (f"spawn DataLoader workers produced no batch within {WORKER_TIMEOUT:.0f} s: "
                   "importing the dataset's module or loading a sample is slow in a fresh "
                   "process; make imports light and defer heavy setup")
    else:
        cause = _worker_cause(text) or one_line(exc)
        fix = ("the dataset's class and everything it references must be importable in a "
               "fresh interpreter (not defined in __main__, a notebook or a test function)"
               if "ModuleNotFoundError" in text or "AttributeError: Can't get" in text
               or "No module named" in text else
               "the dataset must not rely on state its pickle does not carry (globals set by "
               "the factory, handles opened in __init__)")
        message = (f"a spawn-context DataLoader worker (macOS/Windows default) raised {cause}: "
                   f"{fix}")
    return warned(message, f"after {seconds:.1f} s:\n{text}",
                  where or where_dataset(ctx, data.dataset))


def _worker_cause(text: str) -> str:
    """The exception line at the end of a worker's re-raised traceback."""
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    for line in reversed(lines):
        if ":" in line and (line.split(":", 1)[0].endswith(("Error", "Exception"))
                            or line.startswith(("ModuleNotFoundError", "AttributeError"))):
            return line
    return ""


# --------------------------------------------------------------------------- data.model_fit


@check("data.model_fit")
def model_fit(ctx: CheckContext) -> Outcome:
    data = require_data(ctx)
    spec = ctx.spec
    if spec is None:
        raise Skip("data.model_fit needs a model: declare the dataset in a model's spec")
    scan = get_scan(ctx)
    loaded_samples(ctx, scan)
    whole = spec.step is not None
    source = DatasetSource(data, ctx.seed, whole_batch=whole)
    batch_size = ctx.train_batch_size
    try:
        batch = source.batch(batch_size)
        key = source.key()
    except Exception as exc:
        for index in sorted(scan.errors):
            scan.defer(scan.errors[index], "data.model_fit")
        return failed(f"building a batch of {batch_size} samples raised {one_line(exc)}: every "
                      "sample must load and collate (see data.collate)",
                      traceback.format_exc(), ctx.where_exception(exc))
    raw_inputs, label = (batch, None) if whole else split_sample(batch, key)
    inputs = Inputs.from_user(raw_inputs).map(lambda t: t.to(ctx.device))
    desc = inputs.describe()
    model = ctx.model.eval()
    seed_everything(derived_seed(ctx.seed, "data.model_fit"))
    with torch.no_grad():
        if whole:
            return _fit_step(ctx, inputs, desc)
        try:
            output = ctx.call(model, inputs)
        except Exception as exc:
            return failed(
                f"a real batch ({desc}) does not fit the model: {one_line(exc)}"
                f"{_dtype_hint(ctx, inputs)}; make the dataset's samples match the model's "
                "input layer (features, channels, dtype), or fix the model",
                traceback.format_exc(),
                ctx.where_exception(exc),
            )
        bad = [(p, t) for p, t in floating_leaves(output) if not bool(torch.isfinite(t).all())]
        if bad:
            return failed(
                f"{bad[0][0]} contains NaN/Inf on a real batch ({desc}) although the forward "
                "pass is finite on generated inputs: check the data's scale and "
                "normalisation (see data.finite)",
                where=ctx.where_model(),
            )
        if spec.loss is None:
            return passed(f"a real batch ({desc}) runs through the model; outputs finite")
        target = label.to(ctx.device) if isinstance(label, torch.Tensor) else (
            torch.as_tensor(label).to(ctx.device) if label is not None else None)
        label_desc = (f"labels {label_path(batch, key)}: {shape_str(tuple(target.shape))} "
                      f"{_dtype_name(target.dtype)}" if target is not None else "no labels")
        try:
            loss = ctx.loss_of(output, target)
        except Exception as exc:
            return failed(
                f"the loss raised {one_line(exc)} on a real batch ({label_desc})"
                f"{_label_hint(ctx, target)}: make the labels match what the loss expects "
                "(dtype, shape, range)",
                traceback.format_exc(),
                ctx.where_exception(exc),
            )
    if not isinstance(loss, torch.Tensor) or not bool(torch.isfinite(loss).all()):
        return failed(f"the loss on a real batch ({label_desc}) is {loss}, not finite: check "
                      "the labels' range and the data's scale (see data.labels, data.finite)",
                      where=ctx.where_model())
    return passed(f"a real batch ({desc}; {label_desc}) runs through the model and the loss "
                  f"({float(loss):.4g})")


def _fit_step(ctx: CheckContext, inputs: Inputs, desc: str) -> Outcome:
    assert ctx.spec is not None and ctx.spec.step is not None
    try:
        loss = ctx.spec.step(ctx.model, inputs.user_form())
    except Exception as exc:
        return failed(
            f"the step raised {one_line(exc)} on a real batch ({desc}): make the dataset's "
            "batches match what the step and the model expect",
            traceback.format_exc(),
            ctx.where_exception(exc),
        )
    if not isinstance(loss, torch.Tensor) or not bool(torch.isfinite(loss).all()):
        return failed(f"the step's loss on a real batch ({desc}) is {loss}, not a finite "
                      "tensor: check the data's scale and labels",
                      where=ctx.locator.for_function(ctx.spec.step) or ctx.where_model())
    return passed(f"a real batch ({desc}) runs through the step; loss {float(loss.mean()):.4g}")


def _dtype_hint(ctx: CheckContext, inputs: Inputs) -> str:
    wanted = ctx.parameters_dtype()
    for path, tensor in inputs.tensors():
        if tensor.is_floating_point() and tensor.dtype != wanted:
            return (f" (the batch's {path} is {_dtype_name(tensor.dtype)} but the parameters are "
                    f"{_dtype_name(wanted)}: convert in __getitem__, e.g. .float())")
    return ""


def _label_hint(ctx: CheckContext, target: Any) -> str:
    loss = ctx.spec.loss if ctx.spec is not None else None
    if (isinstance(loss, CLASS_LOSSES) and isinstance(target, torch.Tensor)
            and target.is_floating_point()):
        return f" ({type(loss).__name__} needs int64 class ids: see data.labels)"
    return ""


__all__: Sequence[str] = [
    "collate", "finite", "labels", "length", "model_fit", "reproducible", "samples", "workers",
]
