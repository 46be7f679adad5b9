"""The worker: one process per model or dataset, forked from a server that has already
imported torch and the checks (which hand themselves over as a :class:`Suite`).

It becomes the leader of its own process group (so a timeout can kill everything it
started), captures the output of user code to a file, builds the unit from its factory
and streams messages back to the parent (:mod:`torchvet.engine.protocol`): one before
each check and its verdict after it, so a crash loses nothing already decided. Once the
unit is built it reports its memory footprint and waits for the parent's grant; a check
that would not fit the grant is skipped, and every check's peak memory is measured.
Running one check is two steps, as in pytest: :meth:`CallInfo.from_call` captures the
call (its outcome or the exception that escaped, and its duration), :func:`report` turns
that into the verdict (declared xfail, budget, exception mapping, location).
"""

from __future__ import annotations

import contextlib
import importlib
import os
import sys
import time
import traceback
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import torch

from ..engine import protocol
from ..engine.jobs import Job
from ..engine.memory import read_memory, usable
from ..regression.compute import snapshot_message
from ..results import CheckResult, Status
from ..verdict import Outcome, Skip, first_match
from . import fresh_process, rss
from .budget import BudgetExceeded, over_budget_reason, time_budget
from .context import CheckContext
from .data_batches import DataSpec
from .defects import shadowed_method
from .footprint import SLACK, held_growth, probe
from .inputs import Inputs, fitting_hint
from .locate import Locator
from .memory_plan import MemoryPlan
from .seeding import derived_seed, seed_everything
from .spec import ModelSpec, SpecError, normalize_dataset, normalize_model
from .suite import CheckFunction, Suite
from .text import one_line
from .tracebacks import hide_torchvet_frames

Send = Callable[[protocol.Message], None]
Receive = Callable[[], Any]


def run_job(job: Job, conn: Any, suite: Suite) -> None:
    """Process entry point: run every planned check for ``job`` from ``suite``,
    streaming results."""
    meter = rss.Meter()  # first: what the worker shares with the fork server
    with contextlib.suppress(OSError):
        os.setsid()
    if job.output_path:
        _capture_output(job.output_path)
    torch.set_num_threads(max(1, job.threads))
    fresh_process.borrow_fork_server(job.fork_server)

    def send(message: protocol.Message) -> None:
        conn.send(message)

    send(protocol.Ready())
    try:
        UnitRun(job, send, suite, receive=conn.recv, meter=meter).run()
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        conn.close()


def _capture_output(path: str) -> None:
    sys.stdout.flush()
    sys.stderr.flush()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)


class BuildError(Exception):
    """The unit could not be built; ``message`` is the verdict for every check."""

    def __init__(self, message: str, where: Any, details: str = "") -> None:
        super().__init__(message)
        self.message, self.where, self.details = message, where, details


class UnitRun:
    """Build one unit and run its checks in order."""

    def __init__(self, job: Job, send: Send, suite: Suite,
                 factory_fn: Callable[[], Any] | None = None,
                 receive: Receive | None = None, meter: rss.Meter | None = None) -> None:
        self.factory_fn = factory_fn
        self.job = job
        self.send = send
        self.suite = suite
        self.receive = receive  # the parent's Grant (None in-process: no parent to ask)
        self.meter = meter or rss.Meter()
        self.factory = job.factory
        project_dirs = list(job.project_dirs)
        self.locator = Locator(project_dirs, job.report_root)
        self.plan = job.planned_checks()

    def factory_where(self) -> Any:
        if self.factory.file and self.factory.line:
            return self.locator.relative(self.factory.file), self.factory.line
        return None

    # -- building ---------------------------------------------------------------
    def import_factory(self) -> Callable[[], Any]:
        for entry in reversed(self.factory.sys_path):
            if entry not in sys.path:
                sys.path.insert(0, entry)
        module_name, attr = self.factory.module, self.factory.attr
        try:
            target: Any = importlib.import_module(module_name)
            for part in attr.split("."):
                target = getattr(target, part)
        except Exception as exc:
            raise BuildError(
                f"cannot import the factory {self.factory.value}: {one_line(exc)}; check "
                "the entry point and that the project's dependencies are installed",
                self.locator.for_exception(exc) or self.factory_where(),
                traceback.format_exc(),
            ) from exc
        if not callable(target):
            raise BuildError(
                f"{self.factory.value} is a {type(target).__name__}, not a callable: the "
                "entry point must name a zero-argument function or class",
                self.factory_where(),
            )
        return target

    def call_factory(self, fn: Callable[[], Any]) -> Any:
        seed_everything(self.job.seed)
        try:
            return fn()
        except Exception as exc:
            raise BuildError(
                f"the factory {self.factory.value} raised {one_line(exc)}",
                self.locator.for_exception(exc) or self.factory_where(),
                traceback.format_exc(),
            ) from exc

    def resolve_device(self) -> str:
        device = self.job.device
        if device == "auto":
            return "cuda" if torch.cuda.is_available() else "cpu"
        if device.startswith("cuda") and not torch.cuda.is_available():
            raise BuildError(
                f"--device {device} but torch.cuda.is_available() is False (torch "
                f"{torch.__version__}); install a CUDA build of torch or use --device cpu",
                None,
            )
        return device

    def build_context(self) -> CheckContext:
        device = self.resolve_device()
        fn = self.factory_fn or self.import_factory()
        obj = self.call_factory(fn)
        job = self.job

        def rebuild(seed: int | None = None) -> Any:
            seed_everything(derived_seed(job.seed, "rebuild") if seed is None else seed)
            return fn()

        spec: ModelSpec | None = None
        data: DataSpec | None = None
        try:
            if self.factory.kind == "model":
                spec = normalize_model(obj, self.factory.name, job.config, job.seed)
                warnings = spec.warnings
            else:
                data, warnings = normalize_dataset(obj, job.config)
        except SpecError as exc:
            raise BuildError(str(exc), self.factory_where()) from exc
        shadowed = shadowed_method(spec.model) if spec is not None else None
        if shadowed is not None:
            message, cls = shadowed
            raise BuildError(message, self.locator.for_class(cls) or self.factory_where())
        file, line = self._loc(self.factory_where())
        for text in warnings:
            self.emit(CheckResult("spec", Status.WARNED, text, "", file, line))
        if spec is not None:
            if spec.data is not None:
                self.plan = job.planned_checks(has_data=True)
                self.send(protocol.Plan(tuple(self.plan)))
            if spec.timeout:
                self.send(protocol.Deadline(float(spec.timeout)))
            spec.model.to(device)
        return CheckContext(self.factory, job.seed, device, self.locator, rebuild, spec, data,
                            budgets=job.config.budgets, baseline=job.baseline,
                            default_budgets=self.suite.budgets)

    # -- running -----------------------------------------------------------------
    def emit(self, result: CheckResult) -> None:
        if not self.job.full_trace:
            result.details = hide_torchvet_frames(result.details)
        self.send(protocol.Finished(result))

    @staticmethod
    def _loc(where: Any) -> tuple[str | None, int | None]:
        return (where[0], where[1]) if where else (None, None)

    def run(self) -> None:
        started = time.perf_counter()
        try:
            ctx = self.build_context()
        except BuildError as exc:
            for check_id in self.plan:
                self.emit(CheckResult(check_id, Status.ERROR, exc.message, exc.details,
                                      *self._loc(exc.where)))
            if self.job.snapshot:
                self.send(snapshot_message(None, exc.message))
            self.send(protocol.Done(time.perf_counter() - started, self.meter.unit_peak))
            return
        blanket = self.blanket_skip(ctx)
        ctx.memory = self.negotiate(ctx, probe_model=not blanket)
        for check_id in self.plan:
            self.send(protocol.Started(check_id))
            if blanket:
                self.emit(CheckResult(check_id, Status.SKIPPED, blanket))
                continue
            self.emit(self.measured(check_id, ctx))
        if self.job.snapshot:
            self.send(protocol.Started("snapshot"))  # a crash from here on is the snapshot's
            self.send(snapshot_message(ctx, blanket))
        self.send(protocol.Done(time.perf_counter() - started, self.meter.unit_peak))

    # -- memory ------------------------------------------------------------------
    def negotiate(self, ctx: CheckContext, probe_model: bool) -> MemoryPlan:
        """Report the unit's footprint and wait for the parent's grant (in-process: the
        memory the machine has free)."""
        meter = self.meter
        sizes = probe(ctx, meter) if probe_model and ctx.spec is not None else None
        rss.release_freed()
        baseline = meter.now()
        meter.unit_peak = max(meter.unit_peak, baseline)
        kind = "models" if self.factory.kind == "model" else "datasets"
        plan = MemoryPlan(sizes, None, baseline, meter, f"{kind}.{self.factory.name}")
        need = max((plan.need(c, ctx) for c in self.plan), default=0)
        need += held_growth(plan.sizes_of(ctx), ctx) if ctx.spec is not None else 4 * SLACK
        plan.way = None  # decided again against the grant
        self.send(protocol.Footprint(baseline, need, sizes.weights if sizes else 0))
        plan.grant = self.wait_for_grant(need)
        return plan

    def wait_for_grant(self, need: int) -> protocol.Grant | None:
        if self.receive is None:
            reading = read_memory()
            if reading is None:
                return None
            return protocol.Grant(usable(reading), usable(reading))
        while True:
            message = self.receive()
            if isinstance(message, protocol.Grant):
                return message

    def measured(self, check_id: str, ctx: CheckContext) -> CheckResult:
        """``run_check`` within the memory plan: skipped if it cannot fit, else run with
        its peak measured, and what it borrowed given back after."""
        plan = ctx.memory
        spec = ctx.spec if ctx.spec is not None else ctx.data
        declared = first_match(check_id, spec.skip) if spec is not None else None
        reason = "" if declared else plan.skip_reason(check_id, ctx)
        if reason:
            return CheckResult(check_id, Status.SKIPPED, reason, plan.details(ctx))
        self.meter.begin()
        try:
            result = run_check(check_id, ctx, self.suite)
        finally:
            plan.after_check(ctx, self.plan[self.plan.index(check_id) + 1:])
        result.peak_memory = self.meter.end()
        note = plan.note(check_id, ctx)
        if note and result.status is not Status.SKIPPED:
            result.message = f"{result.message} {note}"
        return result

    def blanket_skip(self, ctx: CheckContext) -> str:
        """A reason to skip every check (no usable inputs), or ''."""
        spec = ctx.spec
        if spec is None:
            return ""
        def run(x: torch.Tensor) -> Any:
            with torch.no_grad():
                return ctx.call(spec.model.eval(), Inputs((x.to(ctx.device),), {}))

        if spec.inputs is None:
            return f"{spec.inputs_problem}; {fitting_hint(self.factory.name, spec.model, run)}"
        if not spec.inferred_inputs:
            return ""
        try:
            ctx.current_check = "forward.runs"
            ctx.eval_output()
        except Exception as exc:
            ctx.forget()
            return (
                f"inputs {spec.inputs.description} did not fit: {one_line(exc)}; "
                f"{fitting_hint(self.factory.name, spec.model, run)}"
            )
        return ""


def run_check(check_id: str, ctx: CheckContext, suite: Suite) -> CheckResult:
    """Run one check of ``suite``: skipped as declared, else its call captured and
    reported."""
    declared = ctx.spec if ctx.spec is not None else ctx.data  # a dataset unit declares its own
    skips = declared.skip if declared is not None else {}
    xfails = declared.xfail if declared is not None else {}
    declared_skip = first_match(check_id, skips)
    if declared_skip is not None:
        pattern, reason = declared_skip
        return CheckResult(check_id, Status.SKIPPED, f"skipped ({pattern}): {reason}")
    func = suite.implementations.get(check_id)
    if func is None:
        return CheckResult(check_id, Status.ERROR, f"no implementation registered for {check_id}")
    return report(check_id, CallInfo.from_call(check_id, func, ctx), ctx, xfails)


@dataclass(frozen=True)
class CallInfo:
    """What calling one check did: the outcome it returned, or the exception that escaped
    it (with its traceback), under which budget, and how long it took (pytest's
    ``CallInfo``)."""

    outcome: Outcome | None
    error: BaseException | None
    traceback: str
    budget: float
    duration: float

    @classmethod
    def from_call(cls, check_id: str, func: CheckFunction, ctx: CheckContext) -> CallInfo:
        """Call ``func`` as ``check_id`` on the pristine model, seeded from the run seed
        and its id, under its time budget."""
        started = time.perf_counter()
        ctx.begin_check(check_id)
        seed_everything(derived_seed(ctx.seed, check_id))
        budget = ctx.budget(check_id)
        outcome: Outcome | None = None
        error: BaseException | None = None
        details = ""
        try:
            with time_budget(budget):
                outcome = func(ctx)
        except (BudgetExceeded, Skip) as exc:
            error = exc
        except Exception as exc:
            error = exc
            details = traceback.format_exc()
        return cls(outcome, error, details, budget, time.perf_counter() - started)


def report(check_id: str, call: CallInfo, ctx: CheckContext,
           xfails: Mapping[str, str]) -> CheckResult:
    """The verdict of a captured call: its outcome, or the skip or error its exception
    stands for; a declared xfail applied; pointed at the model when it names no line."""
    outcome = _outcome_of(check_id, call, ctx)
    declared_xfail = first_match(check_id, xfails)
    if declared_xfail is not None:
        outcome = _apply_xfail(outcome, *declared_xfail)
    where = outcome.where
    if where is None and outcome.status not in (Status.PASSED, Status.SKIPPED):
        where = ctx.where_model() if ctx.spec is not None else ctx.where_factory()
    file, line = (where[0], where[1]) if where else (None, None)
    message = outcome.message or ("ok" if outcome.status is Status.PASSED else "")
    return CheckResult(check_id, outcome.status, message, outcome.details, file, line,
                       call.duration, outcome.data)


def _outcome_of(check_id: str, call: CallInfo, ctx: CheckContext) -> Outcome:
    """What the call stands for: a budget that ran out and a skip (a failed dependency
    is one) are skips, any other exception an error at the project's line."""
    if call.error is None:
        assert call.outcome is not None
        return call.outcome
    error = call.error
    if isinstance(error, BudgetExceeded):
        return Outcome(Status.SKIPPED, over_budget_reason(check_id, call.budget))
    if isinstance(error, Skip):
        return Outcome(Status.SKIPPED, str(error))
    return Outcome(Status.ERROR, f"{check_id} raised {one_line(error)}", call.traceback,
                   ctx.where_exception(error))


def _apply_xfail(outcome: Outcome, pattern: str, reason: str) -> Outcome:
    if outcome.status in (Status.FAILED, Status.ERROR, Status.WARNED):
        return Outcome(Status.XFAILED, f"xfail ({reason}): {outcome.message}", outcome.details,
                       outcome.where, outcome.data)
    if outcome.status is Status.PASSED:
        return Outcome(
            Status.XPASSED,
            f"declared xfail ({pattern}: {reason}) but it passed: remove the xfail",
            outcome.details,
            outcome.where,
        )
    return outcome
