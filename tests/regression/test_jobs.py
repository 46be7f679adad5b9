"""Snapshots through the engine (torchvet.regression.jobs): which jobs compare and
send their snapshot back, snapshot-only jobs run through real workers, and the Model
changes row each compared unit gets."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.fixtures import models_regression
from torchvet.engine import protocol, reaper
from torchvet.engine.executor import META_MODULES, Executor, preload_for
from torchvet.engine.jobs import Job
from torchvet.project.config import UnitConfig
from torchvet.project.discovery import Factory
from torchvet.regression.jobs import record_changes, take_snapshots, with_baselines
from torchvet.regression.store import Baseline
from torchvet.results import CheckResult, Status

FIXTURES = Path(models_regression.__file__).parent


def job(name: str, checks: tuple[str, ...] = (), **config: object) -> Job:
    return Job(Factory(name, "model", "d", f"tests.fixtures.models_regression:{name}",
                       sys_path=(str(FIXTURES.parent.parent),)),
               UnitConfig(**config), checks=checks)  # type: ignore[arg-type]


SNAPSHOT = {"params": {"total": 10}, "signature": {},
            "measured": {"torch 2.13 / cpu": {"flops": {"forward": 100}}}}


def test_only_jobs_that_compare_with_a_snapshot_send_theirs_back() -> None:
    baselines = {("model", "a"): Baseline(SNAPSHOT, "s/a.json"),
                 ("model", "b"): Baseline(None, "s/b.json", "no snapshot"),
                 ("model", "c"): Baseline(SNAPSHOT, "s/c.json")}
    jobs = with_baselines([job("a", cost_threshold=0.2), job("b"),
                           job("c", ("forward",)), job("d")], baselines)
    assert [j.snapshot for j in jobs] == [True, False, False, False]
    assert jobs[0].baseline is not None and jobs[0].baseline.cost_share == 0.2
    assert jobs[3].baseline is None


def test_snapshot_jobs_preload_what_flop_counting_imports() -> None:
    assert set(META_MODULES) <= set(preload_for([Job(job("a").factory, UnitConfig(),
                                                     checks=("-*",), snapshot=True)]))


@pytest.mark.slow
def test_snapshot_jobs_run_no_check_and_send_the_snapshot_or_why_not() -> None:
    run = take_snapshots([job("net"), job("no_such_factory")], parallel=2)
    assert all(not report.results for report in run.reports)
    good = run.snapshots[("model", "net")]
    assert good.data is not None and good.data["unit"] == "net"
    assert good.data["params"]["total"] == 420
    bad = run.snapshots[("model", "no_such_factory")]
    assert bad.data is None and "cannot import the factory" in bad.error
    assert "cannot import the factory" in run.problem(run.reports[1])


def test_record_changes_fills_the_row_of_compared_units() -> None:
    before = {"params": {"total": 10}, "signature": {"state_dict": {"fc": {"w": "2"}}},
              "measured": {"k": {"flops": {"forward": 100}, "activation_bytes": 8}}}
    after = {"params": {"total": 12}, "signature": {"state_dict": {"fc": {"w": "3"}}},
             "measured": {"k": {"flops": {"forward": 120}, "activation_bytes": 8}}}
    jobs = with_baselines([job("a"), job("b")], {("model", "a"): Baseline(before, "base x")})
    reports = [Executor.new_report(j) for j in jobs]
    reports[0].results.append(CheckResult("regression.outputs", Status.FAILED, "moved"))
    record_changes(reports, jobs, {("model", "a"): protocol.Snapshot(after)})
    assert reports[0].changes == {
        "checkpoint_compatible": False, "signature_changed": True, "params": [10, 12],
        "flops": [100, 120], "activation_bytes": [8, 8], "baseline": "base x",
        "outputs_changed": True}
    assert reports[1].changes == {}


DAEMON_LEFT = """
import os, sys
from torchvet.engine import reaper
from torchvet.engine.jobs import Job
from torchvet.regression.jobs import take_snapshots
from torchvet.project.config import UnitConfig
from torchvet.project.discovery import Factory
factory = Factory("leaves_a_daemon", "model", "d",
                  "tests.fixtures.models_regression:leaves_a_daemon", sys_path=(sys.argv[1],))
run = take_snapshots([Job(factory, UnitConfig())])
daemon = int(open(os.environ["TORCHVET_TEST_DAEMON_PIDFILE"]).read())
print(run.snapshots[("model", "leaves_a_daemon")].data is not None,
      reaper.read_proc(daemon) is None)
"""


@pytest.mark.slow
def test_a_snapshot_job_leaves_no_process_behind(tmp_path: Path) -> None:
    """A base ref's factories are the project's code: what they start is swept like a
    run's units' (take_snapshots is their subreaper)."""
    pidfile = tmp_path / "daemon.pid"
    env = {**os.environ, "TORCHVET_TEST_DAEMON_PIDFILE": str(pidfile)}
    try:
        result = subprocess.run([sys.executable, "-c", DAEMON_LEFT,
                                 str(FIXTURES.parent.parent)],
                                capture_output=True, text=True, timeout=300, env=env)
        assert result.stdout.split() == ["True", "True"], result.stderr[-3000:]
    finally:  # a failure must not leave the daemon running on this machine
        if pidfile.is_file() and reaper.read_proc(int(pidfile.read_text())) is not None:
            os.kill(int(pidfile.read_text()), signal.SIGKILL)
