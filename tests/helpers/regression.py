"""Snapshots in-process: take a factory's snapshot as a snapshot job does, and run the
regression checks of another factory against it (the worker's UnitRun, no process)."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from torchvet.checks.suite import SUITE
from torchvet.engine import protocol
from torchvet.engine.jobs import Job
from torchvet.project.config import UnitConfig
from torchvet.project.discovery import Factory
from torchvet.regression.jobs import NO_CHECKS, with_baselines
from torchvet.regression.store import Baseline
from torchvet.results import CheckResult
from torchvet.unit.worker import UnitRun


def _job(factory: Callable[[], Any], name: str, kind: str, seed: int,
         config: UnitConfig | None, **fields: Any) -> Job:
    file = inspect.getsourcefile(factory)
    line = inspect.getsourcelines(factory)[1]
    root = str(Path(file or ".").parent)
    record = Factory(name=name, kind=kind, dist="", value=f"tests:{name}", file=file,
                     line=line)
    return Job(factory=record, config=config or UnitConfig(), seed=seed,
               project_dirs=(root,), report_root=root, cwd=root, **fields)


def messages(factory: Callable[[], Any], job: Job) -> list[protocol.Message]:
    sent: list[protocol.Message] = []
    UnitRun(job, sent.append, SUITE, factory_fn=factory).run()
    return sent


def snapshot_message(factory: Callable[[], Any], *, name: str = "net", kind: str = "model",
                     seed: int = 0, config: UnitConfig | None = None) -> protocol.Snapshot:
    job = _job(factory, name, kind, seed, config, checks=NO_CHECKS, snapshot=True)
    found = [m for m in messages(factory, job) if isinstance(m, protocol.Snapshot)]
    assert len(found) == 1, found
    return found[0]


def take_snapshot(factory: Callable[[], Any], **kwargs: Any) -> dict[str, Any]:
    """The snapshot ``torchvet snapshot`` would write for ``factory``."""
    sent = snapshot_message(factory, **kwargs)
    assert sent.data is not None, sent.error
    return sent.data


def compare(factory: Callable[[], Any], baseline: Mapping[str, Any] | Baseline | None,
            checks: Sequence[str] = ("regression",), *, name: str = "net",
            kind: str = "model", seed: int = 0, config: UnitConfig | None = None,
            source: str = ".torchvet/snapshots/net.json") -> dict[str, CheckResult]:
    """The regression checks of ``factory`` against ``baseline`` (a snapshot)."""
    if baseline is not None and not isinstance(baseline, Baseline):
        baseline = Baseline(baseline, source)
    job = _job(factory, name, kind, seed, config, checks=tuple(checks))
    job = with_baselines([job], {(kind, name): baseline} if baseline else {})[0]
    return {m.result.id: m.result for m in messages(factory, job)
            if isinstance(m, protocol.Finished)}
