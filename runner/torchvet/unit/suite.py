"""The checks a worker runs, as the checks side hands them over.

The runtime never imports the checks (they import it): an entry module on the checks
side (:mod:`torchvet.checks.suite`) builds a :class:`Suite` — every registered
implementation and its default time budget — and passes it to the worker, the way
pytest's runner is handed its plugins rather than importing them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from ..verdict import Outcome
from .context import CheckContext

CheckFunction = Callable[[CheckContext], Outcome]


@dataclass(frozen=True)
class Suite:
    """Implementations by check id, and each check's default budget in seconds (a
    declared ``[tool.torchvet] budgets`` entry wins over it)."""

    implementations: Mapping[str, CheckFunction]
    budgets: Mapping[str, float] = field(default_factory=dict)
