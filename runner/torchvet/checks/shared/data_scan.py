"""The sample scan every data check reads, and who reports a sample that fails to load.

Up to ``max_samples`` samples are read once per unit (the first half of the budget from
the start, the batches data.collate checks, the rest spread evenly over the dataset, the
last one included), each with torch, random and numpy seeded from its index, so a
verdict does not depend on which checks ran before it. A load failure has one owner:
an ``IndexError``, or any error at the last index, is data.length's; any other error is
data.samples'. The other checks use the samples that loaded, or skip naming the owner.
"""

from __future__ import annotations

import time
import traceback
from dataclasses import dataclass
from typing import Any

from ...unit.context import CheckContext
from ...unit.data_batches import DataSpec, dataset_length, is_iterable
from ...unit.seeding import derived_seed, seed_everything
from ...unit.text import one_line
from ...verdict import DependencyFailed, Location, Skip

SCAN_SECONDS = 20.0  # wall-clock budget of the sample scan (the rest is spread evenly)

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
