"""The checks as the worker runs them: every area imported and handed over as one Suite.

The runtime (:mod:`torchvet.unit`) never imports the checks; this entry module gives
them to it, the way pytest hands its plugins to the runner. The run's fork server
preloads this module (``torchvet.engine.executor.WORKER_MODULE``), so a forked worker
starts with torch and every check imported, and enters through :func:`run_job`.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from ..engine.jobs import Job
from ..unit import worker
from ..unit.suite import Suite
from . import register_all
from .catalogue import CATALOGUE
from .registry import IMPLEMENTATIONS

register_all()


class CatalogueBudgets(Mapping[str, float]):
    """Each check's budget as the catalogue declares it, read on use: the catalogue stays
    the one place it is written."""

    def __getitem__(self, check_id: str) -> float:
        return CATALOGUE[check_id].budget

    def __iter__(self) -> Iterator[str]:
        return iter(CATALOGUE)

    def __len__(self) -> int:
        return len(CATALOGUE)


# the live registry (a test may lend an id to its own function) and the catalogue's budgets
SUITE = Suite(IMPLEMENTATIONS, CatalogueBudgets())


def run_job(job: Job, conn: Any) -> None:
    """Process entry point: run ``job``'s planned checks in this worker, streaming
    results over ``conn``."""
    worker.run_job(job, conn, SUITE)
