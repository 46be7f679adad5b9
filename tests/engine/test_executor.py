"""The executor on its own: how it orders, describes and closes units, and how it reads
the worker's messages (no worker process needed)."""

from __future__ import annotations

import signal
import time

import pytest

from torchvet.engine import protocol
from torchvet.engine.executor import (
    GUARD_MODULE,
    META_MODULES,
    WORKER_MODULE,
    Executor,
    _Running,
    describe_exit,
    preload_for,
    start_order,
)
from torchvet.engine.jobs import Job
from torchvet.engine.memory import HISTORY_MARGIN
from torchvet.project.config import UnitConfig
from torchvet.project.discovery import Factory
from torchvet.results import UNIT_ID, CheckResult, Status


def job(name: str = "m", kind: str = "model", *, checks: tuple[str, ...] = (),
        dataset: str | None = None) -> Job:
    return Job(Factory(name, kind, "dist", f"m:{name}"), UnitConfig(dataset=dataset),
               checks=checks)


class FakeProcess:
    pid = None
    exitcode = 0
    sentinel = -1


class FakeConnection:
    closed = False

    def close(self) -> None:
        self.closed = True


def running(unit_job: Job) -> _Running:
    return _Running(key=1, job=unit_job, report=Executor.new_report(unit_job),
                    process=FakeProcess(), conn=FakeConnection(),
                    plan=unit_job.planned_checks(), started=0.0, deadline=1e9)


def test_describe_exit() -> None:
    assert describe_exit(3) == "exited with code 3"
    assert "SIGKILL" in describe_exit(-signal.SIGKILL)
    assert "out-of-memory" in describe_exit(-signal.SIGKILL)


def test_interrupt_while_starting_a_unit_cancels_every_unfinished_unit(
        monkeypatch: pytest.MonkeyPatch) -> None:
    jobs = [Job(Factory(name, "model", "d", "m:f"), UnitConfig(), checks=("forward.runs",))
            for name in ("a", "b")]
    executor = Executor(jobs, parallel=2)

    def interrupted(*args: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(executor, "_start", interrupted)
    reports = executor.run()
    assert executor.interrupted
    assert [[r.status.value for r in rep.results] for rep in reports] == [["cancelled"]] * 2


def test_units_with_spawn_workers_start_first_otherwise_discovery_order() -> None:

    def job(name: str, kind: str = "model", dataset: str | None = None) -> Job:
        return Job(Factory(name, kind, "dist", f"m:{name}"), UnitConfig(dataset=dataset))

    jobs = [job("a"), job("b", dataset="shapes"), job("c"), job("shapes", "dataset")]
    assert [j.factory.name for j in sorted(jobs, key=start_order)] == ["shapes", "b", "a", "c"]


def test_fork_server_preloads_the_meta_machinery_only_for_checks_that_need_it() -> None:

    def job(*checks: str) -> Job:
        return Job(Factory("m", "model", "dist", "m:m"), UnitConfig(), checks=checks)

    assert preload_for([job("forward.shape", "training")]) == (GUARD_MODULE, WORKER_MODULE)
    assert preload_for([job("forward"), job()]) == (GUARD_MODULE, WORKER_MODULE,
                                                    *META_MODULES)
    assert preload_for([job("export.compile")]) == (GUARD_MODULE, WORKER_MODULE,
                                                    *META_MODULES)


def test_messages_stream_into_the_report_as_they_arrive() -> None:
    executor = Executor([], parallel=1)
    seen: list[str] = []
    executor.on_result = lambda report, result: seen.append(result.id)
    unit = running(job(checks=("forward.runs", "forward.finite")))
    executor._handle(unit, protocol.Ready())
    assert unit.deadline == unit.started + unit.job.config.timeout
    executor._handle(unit, protocol.Deadline(7.5))
    assert unit.deadline == unit.started + 7.5
    executor._handle(unit, protocol.Plan(("forward.runs", "data.length")))
    assert unit.plan == ["forward.runs", "data.length"]
    executor._handle(unit, protocol.Started("forward.runs"))
    assert unit.in_flight == "forward.runs"
    executor._handle(unit, protocol.Finished(CheckResult("forward.runs", Status.PASSED, "ok")))
    assert unit.in_flight is None and seen == ["forward.runs"]
    assert [r.id for r in unit.report.results] == ["forward.runs"]
    executor._handle(unit, protocol.Done(0.1))
    assert unit.done


def test_a_worker_that_dies_mid_check_blames_that_check_once_and_the_rest_are_not_run() -> None:
    executor = Executor([], parallel=1)
    unit = running(job(checks=("forward.runs", "forward.finite", "forward.dtype",
                               "forward.shape")))
    unit.report.output = ""
    executor._handle(unit, protocol.Ready())
    executor._handle(unit, protocol.Started("forward.runs"))
    executor._handle(unit, protocol.Finished(CheckResult("forward.runs", Status.PASSED)))
    executor._handle(unit, protocol.Started("forward.finite"))
    executor._finish(unit, Status.ERROR, "the worker process was killed by signal 9")
    by_id = {r.id: r for r in unit.report.results}
    assert by_id["forward.runs"].status is Status.PASSED  # nothing decided is lost
    assert (by_id["forward.finite"].status, by_id["forward.finite"].message) == (
        Status.ERROR, "the worker process was killed by signal 9 during this check")
    for later in ("forward.dtype", "forward.shape"):
        assert (by_id[later].status, by_id[later].message) == (
            Status.NOT_RUN, "not run: the worker died during forward.finite")
    assert UNIT_ID not in by_id  # the death is the check's error, said once
    assert unit.report.status is Status.ERROR
    assert unit.report.counts()[Status.ERROR] == 1


def test_a_worker_that_dies_building_the_unit_is_one_unit_error_with_its_last_output() -> None:
    executor = Executor([], parallel=1)
    unit = running(job(checks=("forward.runs", "forward.finite", "training.loss")))
    executor._handle(unit, protocol.Ready())
    unit.report.output = "".join(f"line {i}\n" for i in range(100)) + "Fatal: boom\n"
    executor._finish(unit, Status.ERROR, "the worker process exited with code 3")
    [error] = [r for r in unit.report.results if r.status is Status.ERROR]
    assert error.id == UNIT_ID and error.is_unit
    assert error.message == ("the worker process exited with code 3 while building the "
                             "unit (factory call or first forward)")
    assert error.details.endswith("line 99\nFatal: boom")
    assert "line 80" not in error.details  # the last lines only
    rest = [r for r in unit.report.results if not r.is_unit]
    assert [r.id for r in rest] == ["forward.runs", "forward.finite", "training.loss"]
    assert {(r.status, r.message) for r in rest} == {
        (Status.NOT_RUN, "not run: the unit's worker died before its checks ran")}
    assert unit.report.unit_error is error and unit.report.status is Status.ERROR


def test_a_worker_that_dies_between_checks_cites_the_last_check_that_reported() -> None:
    executor = Executor([], parallel=1)
    unit = running(job(checks=("forward.runs", "forward.finite")))
    executor._handle(unit, protocol.Started("forward.runs"))
    executor._handle(unit, protocol.Finished(CheckResult("forward.runs", Status.FAILED, "x")))
    executor._finish(unit, Status.ERROR, "the worker process was killed by signal 11")
    by_id = {r.id: r for r in unit.report.results}
    assert by_id[UNIT_ID].message == (
        "the worker process was killed by signal 11 after forward.runs")
    assert by_id["forward.runs"].status is Status.FAILED
    assert by_id["forward.finite"].message == "not run: the unit's worker died after forward.runs"


def test_a_unit_that_could_not_be_built_is_one_error_and_its_checks_are_not_run() -> None:
    """The worker gives every planned check the build error without a Started: the
    parent keeps it once, as the unit's, and marks the checks not run."""
    executor = Executor([], parallel=1)
    streamed: list[tuple[str, Status]] = []
    executor.on_result = lambda report, result: streamed.append((result.id, result.status))
    unit = running(job(checks=("forward.runs", "forward.finite", "state.roundtrip")))
    executor._handle(unit, protocol.Ready())
    for check in unit.plan:
        executor._handle(unit, protocol.Finished(CheckResult(
            check, Status.ERROR, "the factory m:m raised ImportError: no torchvision",
            "Traceback ...\nImportError: no torchvision", "src/m.py", 3)))
    executor._handle(unit, protocol.Done(0.1))
    executor._finish(unit, Status.ERROR, "unused: the unit is done")
    [error, *rest] = unit.report.results
    assert (error.id, error.status, error.message, error.file, error.line) == (
        UNIT_ID, Status.ERROR, "the factory m:m raised ImportError: no torchvision",
        "src/m.py", 3)
    assert error.details.endswith("ImportError: no torchvision")
    assert [(r.id, r.status) for r in rest] == [
        ("forward.runs", Status.NOT_RUN), ("forward.finite", Status.NOT_RUN),
        ("state.roundtrip", Status.NOT_RUN)]
    assert rest[0].message == "not run: the unit could not be built (see its error)"
    assert streamed[0] == (UNIT_ID, Status.ERROR) and len(streamed) == 4


def test_a_check_that_raises_after_it_started_stays_the_checks_error() -> None:
    executor = Executor([], parallel=1)
    unit = running(job(checks=("forward.runs",)))
    executor._handle(unit, protocol.Started("forward.runs"))
    executor._handle(unit, protocol.Finished(CheckResult("forward.runs", Status.ERROR, "raised")))
    assert [(r.id, r.status) for r in unit.report.results] == [("forward.runs", Status.ERROR)]


class GrantRecorder(FakeConnection):
    def __init__(self) -> None:
        self.sent: list[object] = []

    def send(self, message: object) -> None:
        self.sent.append(message)


def test_a_footprint_is_answered_with_a_grant_only_when_the_memory_is_there() -> None:
    GiB = 1 << 30
    first, second = job("a"), job("b")
    executor = Executor([first, second], parallel=2, memory=6 * GiB,
                        peaks={("model", "b"): 5 * GiB})
    units = []
    for unit_job in (first, second):
        unit = running(unit_job)
        unit.key, unit.conn = id(unit_job), GrantRecorder()
        executor._running[unit.key] = unit
        units.append(unit)
    a, b = units
    assert executor.memory.may_start(a.key)
    executor.memory.start(a.key)
    executor._handle(a, protocol.Footprint(baseline=GiB, need=2 * GiB, weights=GiB))
    assert a.conn.sent == [protocol.Grant(2 * GiB, 6 * GiB, 0)]
    assert a.report.peak_memory == GiB and a.waiting_since is None
    assert not executor.memory.may_start(b.key), "b's recorded 5 GB do not fit beside a"
    executor.memory.start(b.key)  # (it started alone in another arrangement)
    executor._handle(b, protocol.Footprint(baseline=GiB, need=4 * GiB))
    assert b.conn.sent == [], "b waits: a holds 3 GB, b's recorded 5 GB (+15 %) > 6 - 3"
    assert b.waiting_since is not None
    b.deadline = 0.0  # its clock is stopped while it waits: no timeout
    b.started, b.waiting_since = time.monotonic() - 150, time.monotonic() - 100
    executor._finish(a, Status.PASSED, "")
    recorded = int(5 * GiB * HISTORY_MARGIN) - GiB  # the measured peak beats the estimate
    assert b.conn.sent == [protocol.Grant(recorded, 6 * GiB, 0)]
    assert b.waiting_since is None and b.deadline >= 100.0
    executor._handle(b, protocol.Finished(CheckResult("forward.runs", Status.PASSED,
                                                      peak_memory=3 * GiB)))
    executor._handle(b, protocol.Done(1.0, peak_memory=4 * GiB))
    assert b.report.peak_memory == 4 * GiB
    executor._finish(b, Status.PASSED, "")
    assert 49 < b.report.duration < 60, "the 100 s spent waiting for memory are not its own"
