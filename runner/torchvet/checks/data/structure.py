"""data.length, data.samples, data.finite: the dataset has the samples it claims, they
load and share one layout, and their floating values are finite."""

from __future__ import annotations

import math
import traceback

import torch

from ...unit.context import CheckContext
from ...unit.data_batches import is_default_collate
from ...unit.seeding import derived_seed, seed_everything
from ...unit.text import one_line
from ...verdict import DependencyFailed, Location, Outcome, Skip, failed, passed, warned
from ..registry import check
from ..shared.data_scan import (
    LoadError,
    Scan,
    get_scan,
    loaded_samples,
    require_data,
    where_dataset,
    where_load,
)
from .distinct import sameness
from .layout import (
    Difference,
    Leaf,
    difference_fix,
    differences,
    layout,
    to_tensor,
    uncollatable,
    uncollatable_fix,
)

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
    if size > 2 and _all_alike(ctx):
        raise DependencyFailed(
            f"not run: dataset[{size}] returns a sample too, but every sample is the same: "
            "__getitem__ ignores its index (see data.distinct)")
    return failed(
        f"dataset[{size}] (index len) returned a sample instead of raising IndexError: a "
        "`for sample in dataset` loop never ends (iteration stops only at IndexError); "
        "raise IndexError when index >= len(self) instead of wrapping around (index % len)",
        where=where_get,
    )


def _all_alike(ctx: CheckContext) -> bool:
    try:
        return sameness(ctx) is not None
    except Skip:
        return False


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
        bad = uncollatable(reference)
        if bad is not None:
            return failed(
                f"{ref_name}{bad.path} is {bad.describe()}, which default_collate cannot "
                f"batch: {uncollatable_fix(bad)}",
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
            f"{diff.text(scan.name(index), ref_name)}: {difference_fix(diff, default)}",
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
        tensor = to_tensor(value)
        if tensor is None or not (tensor.is_floating_point() or tensor.is_complex()):
            return None
        if tensor.is_complex():
            tensor = torch.view_as_real(tensor)
        nan = int(torch.isnan(tensor).sum())
        inf = int(torch.isinf(tensor).sum())
        return nan, inf, tensor.numel()
    return None
