"""Snapshots through the engine: jobs that only take their unit's snapshot
(``torchvet snapshot``, a base ref's baseline), jobs that compare against a baseline and
send their snapshot back for the Model changes table, and that table's rows.

Every snapshot is computed in an isolated worker like any check; this module never
imports torch.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

from ..engine import protocol, reaper
from ..engine.executor import Executor
from ..engine.jobs import Job
from ..engine.signals import SignalJudge, trusted_canceller
from ..results import Status, UnitReport
from .diff import change_row
from .store import Baseline

NO_CHECKS = ("-*",)  # excludes every check: a snapshot job runs none
Key = tuple[str, str]  # (kind, name)
# regression.outputs' verdict -> did the outputs change (None: not compared)
OUTPUTS_CHANGED: dict[Status | None, bool] = {
    Status.FAILED: True, Status.XFAILED: True, Status.PASSED: False, Status.XPASSED: False}


@dataclass
class SnapshotRun:
    """What snapshot jobs sent back, per unit, and their reports (a crash, a timeout)."""

    snapshots: dict[Key, protocol.Snapshot]
    reports: list[UnitReport]
    interrupted: bool = False

    def problem(self, report: UnitReport) -> str:
        """Why ``report``'s unit has no snapshot."""
        sent = self.snapshots.get((report.kind, report.name))
        if sent is not None and sent.error:
            return sent.error
        bad = [r for r in report.results if r.status is not Status.PASSED]
        return bad[0].message if bad else "the worker sent no snapshot"


def take_snapshots(jobs: Sequence[Job], parallel: int = 1, capture: bool = True
                   ) -> SnapshotRun:
    """Run ``jobs`` for their snapshots only, ``parallel`` at a time, guarded like a run's
    units (a base ref's factories are the project's code too): this process is their
    subreaper and sweeps what they leave, and their signals are judged by sender."""
    reaper.become_subreaper()
    executor = Executor([replace(job, checks=NO_CHECKS, snapshot=True) for job in jobs],
                        parallel=parallel, capture=capture)
    judge = SignalJudge(executor.reaper, trusted=trusted_canceller())
    with judge:
        reports = executor.run()
        judge.armed = False
        executor.reaper.sweep(final=True)
    return SnapshotRun(executor.snapshots, reports,
                       executor.interrupted or judge.honoured is not None)


def with_baselines(jobs: Sequence[Job], baselines: Mapping[Key, Baseline] | None
                   ) -> list[Job]:
    """Each job with its unit's baseline; a job that will compare against a snapshot also
    sends its own back (the Model changes row)."""
    out = []
    for job in jobs:
        key = (job.factory.kind, job.factory.name)
        found = (baselines or {}).get(key)
        if found is not None:
            found = replace(found, cost_share=job.config.cost_threshold)
        compares = found is not None and found.snapshot is not None and any(
            check.startswith("regression.") for check in job.planned_checks(has_data=True))
        out.append(replace(job, baseline=found, snapshot=compares))
    return out


def record_changes(reports: Sequence[UnitReport], jobs: Sequence[Job],
                   snapshots: Mapping[Key, protocol.Snapshot]) -> None:
    """Fill each compared unit's ``changes``: figures before → after, whether old
    checkpoints load, and whether its outputs moved (regression.outputs' verdict)."""
    by_key = {(job.factory.kind, job.factory.name): job for job in jobs}
    for report in reports:
        job = by_key.get((report.kind, report.name))
        sent = snapshots.get((report.kind, report.name))
        if job is None or job.baseline is None or job.baseline.snapshot is None:
            continue
        if sent is None or sent.data is None:
            continue
        key = next(iter(sent.data.get("measured") or {}), "")
        row = change_row(job.baseline.snapshot, sent.data, key)
        row["baseline"] = job.baseline.origin or job.baseline.source
        if report.kind == "dataset":
            row["checkpoint_compatible"] = None  # no state to load
        verdicts = {r.id: r.status for r in report.results}
        row["outputs_changed"] = OUTPUTS_CHANGED.get(verdicts.get("regression.outputs"))
        report.changes = row
