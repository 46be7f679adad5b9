"""data.workers (warns): the dataset works in DataLoader workers started with spawn, the
macOS and Windows default.

First everything the workers receive must pickle (see :mod:`.pickling`); then one worker
in a fresh process (forked from the run's fork server when possible, see
:mod:`torchvet.unit.fresh_process`) loads batches that must match the ones this process
loads: a dataset that leans on state its pickle does not carry differs there.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import sys
import time
import types
from collections.abc import Iterator
from typing import Any

from torch.utils.data import DataLoader

from ...unit import fresh_process
from ...unit.context import CheckContext
from ...unit.data_batches import DataSpec, is_default_collate, stream_samples
from ...unit.data_batches import collate as collate_samples
from ...unit.seeding import derived_seed, seed_everything
from ...unit.text import one_line
from ...verdict import Location, Outcome, Skip, passed, warned
from ..registry import check
from ..shared.data_scan import Scan, get_scan, loaded_samples, require_data, where_dataset
from .layout import brief, differences, differing_row, layout, leaf_value, same_values
from .pickling import PickleProblem, describe_culprit, pickle_problem

WORKERS = 1  # one interpreter importing torch is the cost; a second adds CPU, not coverage

WORKER_TIMEOUT = 45.0  # seconds a spawn worker may take for its batch (torch import included)

WORKER_LOAD_BUDGET = 20.0  # estimated in-worker loading time above which data.workers skips

WORKER_MAX_BYTES = 32 * 2**20  # pickled dataset size above which data.workers skips

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
        f"culprit: {problem.path} = {brief(problem.culprit)}",
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
                        if not same_values(leaf.value, leaf_value(again, leaf.path))}
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
            if other is not None and not same_values(leaf.value, other.value):
                row = differing_row(leaf.value, other.value, len(batch_indices))
                who = (f"dataset[{batch_indices[row]}]" if row is not None
                       else f"batch {batch_indices}")
                return warned(
                    f"{who}{leaf.path} differs between spawn workers and the main process: the "
                    "dataset depends on state its pickle does not carry (a global set by the "
                    "factory, module state changed after import); keep that state on the "
                    "dataset or rebuild it in __setstate__",
                    f"main process: {brief(leaf.value)}\nworker:       {brief(other.value)}",
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
