"""Run jobs in isolated worker processes and collect their streamed results.

Workers are forked from a fork server that has already imported torch and the checks
(``multiprocessing``'s forkserver with a preload), so a unit costs a fork rather than an
interpreter start plus ``import torch``; spawn is the fallback where forkserver is
unavailable. Each worker leads its own process group: a timeout, an interrupt or the
end of the unit kills the whole group, grandchildren included, and :mod:`.reaper` kills
what left the group (a double-forked daemon). Capture files are kept small on disk by
:mod:`.capture`.

This module never imports torch; the fork server does.
"""

from __future__ import annotations

import contextlib
import fnmatch
import importlib
import multiprocessing
import multiprocessing.connection
import multiprocessing.forkserver as forkserver
import os
import signal
import tempfile
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from ..project.paths import report_path
from ..results import UNIT_ID, CheckResult, Status, UnitReport
from . import capture, protocol
from .jobs import Job
from .memory import Admission, GrantDecision
from .reaper import Reaper

# The first worker waits for the fork server's `import torch`: its clock (and timeout)
# starts when it reports in, with this much grace before that.
STARTUP_GRACE = 120.0
WORKER_MODULE = "torchvet.checks.suite"  # hands the checks to unit.worker
GUARD_MODULE = "torchvet.engine.forkserver_preload"  # imported first by the fork server


def start_method() -> str:
    """forkserver where the platform has it (Linux, macOS), else spawn."""
    return "forkserver" if "forkserver" in multiprocessing.get_all_start_methods() else "spawn"


# A meta-device forward (portability.device, export.*) imports torch's symbolic-shapes
# machinery and torch._dynamo: 2-3 s on first use. Preloading them puts that cost in the
# fork server once per run instead of in every worker, but only when a selected check
# needs them.
META_MODULES = ("torch._dynamo", "torch.fx.experimental.symbolic_shapes")
META_CHECKS = ("portability.device", "export.*", "regression.cost")  # FLOP counting too


def preload_for(jobs: Sequence[Job]) -> tuple[str, ...]:
    """The modules the fork server imports before forking workers for ``jobs``."""
    planned = {check for job in jobs for check in job.planned_checks()}
    if any(job.snapshot for job in jobs) or any(
            fnmatch.fnmatchcase(c, p) for c in planned for p in META_CHECKS):
        return (GUARD_MODULE, WORKER_MODULE, *META_MODULES)
    return (GUARD_MODULE, WORKER_MODULE)


def mp_context(preload: Sequence[str] = (WORKER_MODULE,)) -> Any:
    """The multiprocessing context workers start from (forkserver preloading torch)."""
    method = start_method()
    ctx: Any = multiprocessing.get_context(method)
    if method == "forkserver":
        ctx.set_forkserver_preload(list(preload))
    return ctx


def warm_up(jobs: Sequence[Job]) -> None:
    """Start the fork server now, so its ``import torch`` overlaps the parent's work."""
    if start_method() == "forkserver":
        mp_context(preload_for(jobs))
        forkserver.ensure_running()


def fork_server_address() -> str | None:
    """Where the running fork server listens (workers borrow it: fresh_process)."""
    if start_method() != "forkserver":
        return None
    forkserver.ensure_running()
    address = getattr(forkserver._forkserver, "_forkserver_address", None)
    return address if isinstance(address, str) else None


def start_order(job: Job) -> int:
    """Units known to be slow start first, so that with ``-j N`` no worker is left alone
    with a long unit at the end: datasets and models fed a dataset (their data checks
    scan samples and start a DataLoader worker), then the rest in discovery order
    (``sorted`` is stable)."""
    if job.factory.kind == "dataset":
        return 0
    return 1 if job.config.dataset else 2


def describe_exit(exitcode: int | None) -> str:
    if exitcode is None:
        return "did not report an exit status"
    if exitcode < 0:
        try:
            name = signal.Signals(-exitcode).name
        except ValueError:
            name = f"signal {-exitcode}"
        hint = {
            "SIGSEGV": "segmentation fault in native code",
            "SIGKILL": "killed, often by the out-of-memory killer",
            "SIGABRT": "aborted by native code",
            "SIGBUS": "bus error in native code",
        }.get(name, "")
        return f"was killed by signal {-exitcode} ({name}{': ' + hint if hint else ''})"
    return f"exited with code {exitcode}"


@dataclass
class _Running:
    key: int
    job: Job
    report: UnitReport
    process: Any
    conn: Any
    plan: list[str]
    started: float
    deadline: float
    in_flight: str | None = None
    done: bool = False
    seen: set[str] = field(default_factory=set)
    check_started: float = 0.0
    waiting_since: float | None = None  # waiting for memory: its clock is stopped
    waited: float = 0.0  # seconds spent waiting for memory (not the unit's own time)
    unit_error: bool = False  # the unit's own error (UNIT_ID) is in its report


Observer = Callable[[UnitReport], None]


class Executor:
    """Schedules jobs over ``parallel`` workers; ``run`` returns one report per job.

    ``on_start``/``on_result``/``on_done`` observers get reports as they change, so the
    terminal can show progress. A ``KeyboardInterrupt`` (SIGINT, or SIGTERM turned into
    one by the CLI) kills every worker and marks what did not finish ``cancelled``.
    ``memory`` (usable bytes; None: unlimited) and ``peaks`` (recorded own peak bytes by
    (kind, name)) make ``parallel`` an upper bound: see :mod:`torchvet.engine.memory`.
    """

    def __init__(
        self,
        jobs: Sequence[Any],
        parallel: int = 1,
        on_done: Observer | None = None,
        on_result: Callable[[UnitReport, CheckResult], None] | None = None,
        capture: bool = True,
        memory: int | None = None,
        peaks: Mapping[tuple[str, str], int] | None = None,
    ) -> None:
        self.jobs = list(jobs)
        recorded = peaks or {}
        self.memory = Admission(memory, {
            id(job): recorded[(job.factory.kind, job.factory.name)] for job in self.jobs
            if (job.factory.kind, job.factory.name) in recorded})
        self._running: dict[int, _Running] = {}
        self.parallel = max(1, parallel)
        self.on_done = on_done
        self.on_result = on_result
        self.capture = capture
        self.interrupted = False
        self._context = mp_context(preload_for(self.jobs))
        self._closed: set[int] = set()  # keys of units whose report is final
        self._fork_server: str | None = None  # known once the first worker started it
        self.snapshots: dict[tuple[str, str], protocol.Snapshot] = {}  # (kind, name)
        self.reaper = Reaper()

    # -- planning ------------------------------------------------------------------
    @staticmethod
    def plan_of(job: Job) -> list[str]:
        return job.planned_checks()

    @staticmethod
    def new_report(job: Job) -> UnitReport:
        f = job.factory
        file = report_path(f.file, Path(job.report_root).resolve()) if f.file else None
        return UnitReport(
            name=f.name, kind=f.kind, dist=f.dist, target=f.value, file=file, line=f.line
        )

    # -- running ---------------------------------------------------------------------
    def run(self) -> list[UnitReport]:
        reports = {id(job): self.new_report(job) for job in self.jobs}
        pending = deque(sorted(self.jobs, key=start_order))
        running = self._running
        with (tempfile.TemporaryDirectory(prefix="torchvet-") as scratch,
              capture.CaptureLimiter(Path(scratch))):
            try:
                while pending or running:
                    while (pending and len(running) < self.parallel
                           and self.memory.may_start(id(pending[0]))):
                        job = pending.popleft()
                        self.memory.start(id(job))
                        running[id(job)] = self._start(job, reports[id(job)], Path(scratch))
                    self._wait(running)
            except KeyboardInterrupt:
                self.interrupted = True
                for unit in list(running.values()):
                    self._kill(unit)
                    self._finish(unit, Status.CANCELLED, "cancelled: the run was interrupted")
                for job in self.jobs:
                    if id(job) in self._closed:
                        continue
                    report = reports[id(job)]
                    for check_id in self.plan_of(job):
                        report.results.append(
                            CheckResult(check_id, Status.CANCELLED,
                                        "cancelled: the run was interrupted before this unit")
                        )
                    self._notify(report)
        return [reports[id(job)] for job in self.jobs]

    def _start(self, job: Job, report: UnitReport, scratch: Path) -> _Running:
        key = id(job)
        output_path = None
        if self.capture:
            output_path = str(scratch / f"{len(os.listdir(scratch))}-{job.factory.name}.out")
            job = replace(job, output_path=output_path)
        if self._fork_server is None:
            self._fork_server = fork_server_address() or ""
        job = replace(job, fork_server=self._fork_server or None)
        receiver, sender = self._context.Pipe(duplex=True)  # duplex: the parent grants memory
        process = self._context.Process(
            target=_entry, args=(job, sender), name=f"torchvet:{job.factory.name}", daemon=False
        )
        now = time.monotonic()
        process.start()
        self.reaper.track(process.pid)
        sender.close()
        return _Running(
            key=key,
            job=job,
            report=report,
            process=process,
            conn=receiver,
            plan=self.plan_of(job),
            started=now,
            deadline=now + float(job.config.timeout) + STARTUP_GRACE,
        )

    def _wait(self, running: dict[int, _Running]) -> None:
        by_conn = {u.conn: u for u in running.values() if not u.conn.closed}
        by_sentinel = {u.process.sentinel: u for u in running.values()}
        nearest = min((u.deadline for u in running.values() if u.waiting_since is None),
                      default=time.monotonic() + 1.0)
        timeout = max(0.0, nearest - time.monotonic())
        ready = multiprocessing.connection.wait(
            [*by_conn, *by_sentinel], timeout=timeout
        )
        for obj in ready:
            if obj in by_conn:
                self._drain(by_conn[obj])
        for obj in ready:
            if obj in by_sentinel:
                unit = by_sentinel[obj]
                self._drain(unit)
                unit.process.join()
                self._kill(unit)
                reason = self._blamed(unit) or describe_exit(unit.process.exitcode)
                self._finish(unit, Status.ERROR, f"the worker process {reason}")
                running.pop(unit.key, None)
        now = time.monotonic()
        for key, unit in list(running.items()):
            if unit.deadline <= now and not unit.done and unit.waiting_since is None:
                self._drain(unit)
                self._kill(unit)
                timeout_s = unit.deadline - unit.started
                table = "models" if unit.job.factory.kind == "model" else "datasets"
                self._finish(
                    unit,
                    Status.ERROR,
                    f"timed out after {timeout_s:g} s (its whole process group was killed)",
                    f"raise the limit with --timeout or [tool.torchvet.{table}."
                    f"{unit.job.factory.name}] timeout",
                )
                running.pop(key, None)

    def _drain(self, unit: _Running) -> None:
        conn = unit.conn
        while True:
            try:
                if conn.closed or not conn.poll(0):
                    return
                message = conn.recv()
            except (EOFError, OSError):
                with contextlib.suppress(OSError):
                    conn.close()
                return
            self._handle(unit, message)

    def _handle(self, unit: _Running, message: protocol.Message) -> None:
        match message:
            case protocol.Ready():
                unit.started = time.monotonic()
                unit.deadline = unit.started + float(unit.job.config.timeout)
            case protocol.Started(check):
                unit.in_flight = check
                unit.check_started = time.monotonic()
            case protocol.Finished(result):
                unit.report.peak_memory = max(unit.report.peak_memory, result.peak_memory)
                if unit.in_flight is None and result.status is Status.ERROR \
                        and result.id in unit.plan:
                    result = self._not_built(unit, result)
                unit.report.results.append(result)
                unit.seen.add(result.id)
                unit.in_flight = None
                if self.on_result:
                    self.on_result(unit.report, result)
            case protocol.Plan(checks):
                unit.plan = list(checks)
            case protocol.Deadline(seconds):
                unit.deadline = unit.started + seconds
            case protocol.Footprint(baseline, need):
                unit.report.peak_memory = max(unit.report.peak_memory, baseline)
                unit.waiting_since = time.monotonic()
                self._grant(self.memory.footprint(unit.key, baseline, need))
            case protocol.Snapshot():
                factory = unit.job.factory
                self.snapshots[(factory.kind, factory.name)] = message
            case protocol.Done(_, peak):
                unit.report.peak_memory = max(unit.report.peak_memory, peak)
                unit.done = True

    def _grant(self, decisions: list[GrantDecision]) -> None:
        """Tell waiting workers what memory they may use; their clocks run again."""
        now = time.monotonic()
        for decision in decisions:
            unit = self._running.get(decision.key)  # type: ignore[call-overload]
            if unit is None:
                continue
            if unit.waiting_since is not None:
                unit.deadline += now - unit.waiting_since
                unit.waited += now - unit.waiting_since
                unit.waiting_since = None
            with contextlib.suppress(OSError, EOFError, ValueError):
                unit.conn.send(protocol.Grant(decision.grant, decision.capacity,
                                              decision.others))

    def _kill(self, unit: _Running) -> None:
        pid = unit.process.pid
        if pid is None:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError, OSError):
            os.killpg(pid, signal.SIGKILL)
        if unit.process.exitcode is None:
            with contextlib.suppress(Exception):
                unit.process.kill()
            unit.process.join(timeout=5)
        self.reaper.release(pid)

    def _blamed(self, unit: _Running) -> str | None:
        """Why the unit was stopped when it signalled torchvet (:mod:`.signals`); a unit
        that had already reported every check gets an ``error`` saying so."""
        reason = self.reaper.blamed.pop(unit.process.pid, None)
        if reason and unit.done:
            unit.report.results.append(CheckResult("signal", Status.ERROR, f"the unit {reason}"))
        return reason

    def _not_built(self, unit: _Running, result: CheckResult) -> CheckResult:
        """A check's ``error`` that arrived without a ``Started``: the worker could not
        build the unit and gives every check its reason. The first becomes the unit's
        own error; every check is ``not_run``, citing it."""
        if not unit.unit_error:
            self._add_unit_error(unit, CheckResult(
                UNIT_ID, Status.ERROR, result.message, result.details, result.file,
                result.line, result.duration))
        return CheckResult(result.id, Status.NOT_RUN,
                           "not run: the unit could not be built (see its error)")

    def _add_unit_error(self, unit: _Running, error: CheckResult) -> None:
        unit.report.results.append(error)
        unit.seen.add(UNIT_ID)
        unit.unit_error = True
        if self.on_result:
            self.on_result(unit.report, error)

    def _finish(self, unit: _Running, status: Status, reason: str, hint: str = "") -> None:
        """Close the unit's report. ``reason`` (what happened) and ``hint`` (what to do)
        are said once: as the error of the check in flight, else as the unit's own error
        (it died building the unit or between checks), with the last lines of the
        unit's output; every check that never reported is then ``not_run``, citing it.
        A cancelled run marks them ``cancelled`` instead."""
        fix = f"; {hint}" if hint else ""
        report = unit.report
        if unit.job.output_path:
            report.output = capture.read_tail(unit.job.output_path)
        if not unit.done and status is Status.CANCELLED:
            if unit.in_flight and unit.in_flight not in unit.seen:
                report.results.append(CheckResult(
                    unit.in_flight, status, f"{reason} during this check",
                    duration=time.monotonic() - unit.check_started))
            for check_id in unit.plan:
                if check_id not in unit.seen and check_id != unit.in_flight:
                    report.results.append(CheckResult(check_id, status, reason))
            unit.seen.update(unit.plan)
        elif not unit.done:
            self._died(unit, status, reason, fix)
        now = time.monotonic()
        waiting = now - unit.waiting_since if unit.waiting_since is not None else 0.0
        report.duration = now - unit.started - unit.waited - waiting
        with contextlib.suppress(OSError):
            unit.conn.close()
        unit.done = True
        self._closed.add(unit.key)
        self._running.pop(unit.key, None)
        self._grant(self.memory.finish(unit.key))
        self._notify(report)

    def _died(self, unit: _Running, status: Status, reason: str, fix: str) -> None:
        """The worker died (or timed out) before reporting every check: one error for
        the death, the checks it never reached ``not_run``."""
        report = unit.report
        last = output_tail(report.output)
        ran = [c for c in unit.plan if c in unit.seen]
        if unit.in_flight and unit.in_flight not in unit.seen:
            culprit = unit.in_flight
            report.results.append(CheckResult(
                culprit, status, f"{reason} during this check{fix}", last,
                file=report.file, line=report.line,
                duration=time.monotonic() - unit.check_started))
            unit.seen.add(culprit)
            cause = f"the worker died during {culprit}"
        elif not unit.unit_error:
            where = (f" after {ran[-1]}" if ran else
                     " while building the unit (factory call or first forward)")
            self._add_unit_error(unit, CheckResult(
                UNIT_ID, status, f"{reason}{where}{fix}", last, file=report.file,
                line=report.line))
            cause = "the unit's worker died" + (f" after {ran[-1]}" if ran else
                                                 " before its checks ran")
        else:
            cause = "the unit could not be built (see its error)"
        for check_id in unit.plan:
            if check_id not in unit.seen:
                report.results.append(CheckResult(check_id, Status.NOT_RUN,
                                                  f"not run: {cause}"))
                unit.seen.add(check_id)

    def _notify(self, report: UnitReport) -> None:
        if self.on_done:
            self.on_done(report)


OUTPUT_LINES = 20  # lines of a dead unit's output its error quotes


def output_tail(output: str, lines: int = OUTPUT_LINES) -> str:
    """The last ``lines`` lines of a unit's captured output, for the error of its death
    ('' when it printed nothing)."""
    kept = output.rstrip().splitlines()[-lines:]
    if not kept:
        return ""
    return "last lines of the unit's output:\n" + "\n".join(kept)


def _entry(job: Job, conn: Any) -> None:
    """The worker's entry in the child: the worker side is imported by name (the fork
    server preloaded it), so the parent never imports it."""
    importlib.import_module(WORKER_MODULE).run_job(job, conn)
