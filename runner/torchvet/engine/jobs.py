"""The unit of work handed to a worker: built by the parent, which never imports torch."""

from __future__ import annotations

from dataclasses import dataclass

from ..checks.catalogue import select
from ..project.config import UnitConfig
from ..project.discovery import Factory
from ..regression.store import Baseline


@dataclass(frozen=True)
class Job:
    """Everything a worker needs to check one factory; picklable."""

    factory: Factory
    config: UnitConfig
    seed: int = 0
    device: str = "cpu"
    checks: tuple[str, ...] = ()
    threads: int = 1
    project_dirs: tuple[str, ...] = ()
    report_root: str = "."
    cwd: str = "."
    output_path: str | None = None
    fork_server: str | None = None  # the run's fork server address (fresh_process)
    baseline: Baseline | None = None  # what the regression checks compare with
    snapshot: bool = False  # send the unit's snapshot after its checks
    full_trace: bool = False  # keep torchvet's own frames in verdict tracebacks

    @property
    def patterns(self) -> tuple[str, ...]:
        """Check selection: the command line's ``--checks`` wins over the config's."""
        return self.checks or self.config.checks

    def planned_checks(self, has_data: bool = False) -> list[str]:
        return [m.id for m in select(self.factory.kind, self.patterns, has_data=has_data)]
