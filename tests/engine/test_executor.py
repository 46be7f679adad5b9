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
from torchvet.results import CheckResult, Status


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


def test_a_worker_that_dies_mid_check_blames_that_check_and_closes_the_rest() -> None:
    executor = Executor([], parallel=1)
    unit = running(job(checks=("forward.runs", "forward.finite", "forward.dtype")))
    executor._handle(unit, protocol.Ready())
    executor._handle(unit, protocol.Finished(CheckResult("forward.runs", Status.PASSED)))
    executor._handle(unit, protocol.Started("forward.finite"))
    executor._finish(unit, Status.ERROR, "the worker process was killed by signal 9")
    by_id = {r.id: r for r in unit.report.results}
    assert by_id["forward.runs"].status is Status.PASSED  # nothing decided is lost
    assert by_id["forward.finite"].message == (
        "the worker process was killed by signal 9 during this check")
    assert by_id["forward.dtype"].message == (
        "not run: the worker process was killed by signal 9 during forward.finite")
    assert {r.status for r in unit.report.results[1:]} == {Status.ERROR}


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
