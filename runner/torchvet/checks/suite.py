"""The checks as the worker runs them: every area imported and handed over as one Suite.

The runtime (:mod:`torchvet.unit`) never imports the checks; this entry module gives
them to it, the way pytest hands its plugins to the runner. The run's fork server
preloads this module (``torchvet.engine.executor.WORKER_MODULE``), so a forked worker
starts with torch and every check imported, and enters through :func:`run_job`.
"""

from __future__ import annotations

from typing import Any

from ..engine.jobs import Job
from ..unit import worker
from ..unit.suite import Suite
from . import register_all
from .catalogue import CATALOGUE
from .registry import IMPLEMENTATIONS

register_all()

# the live registry (a test may lend an id to its own function) and the catalogue's budgets
SUITE = Suite(IMPLEMENTATIONS, {check_id: meta.budget for check_id, meta in CATALOGUE.items()})


def run_job(job: Job, conn: Any) -> None:
    """Process entry point: run ``job``'s planned checks in this worker, streaming
    results over ``conn``."""
    worker.run_job(job, conn, SUITE)
