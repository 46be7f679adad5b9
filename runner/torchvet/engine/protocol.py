"""What a worker tells the parent about its unit, one message at a time.

A worker sends these over a pipe as it goes, so a crash loses nothing already decided:
``Ready`` once it runs, ``Plan``/``Deadline`` when building the unit changes them, then
``Started`` and ``Finished`` around every check, ``Snapshot`` when the job asks for the
unit's snapshot, and ``Done`` at the end. The parent dispatches on the type; nothing
here imports torch.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..results import CheckResult


@dataclass(frozen=True)
class Ready:
    """The worker runs: the unit's clock (and timeout) starts now."""


@dataclass(frozen=True)
class Plan:
    """The checks the unit will run, when building it changed them (a model fed a
    dataset gains the data checks)."""

    checks: tuple[str, ...]


@dataclass(frozen=True)
class Deadline:
    """The unit's own timeout (a spec's ``timeout``), counted from ``Ready``."""

    seconds: float


@dataclass(frozen=True)
class Started:
    """A check begins: a crash from here on is this check's."""

    check: str


@dataclass(frozen=True)
class Finished:
    """A check's verdict."""

    result: CheckResult


@dataclass(frozen=True)
class Snapshot:
    """The unit's snapshot (``torchvet snapshot``, the Model changes of a run against a
    baseline), or why none could be taken."""

    data: dict[str, Any] | None
    error: str = ""


@dataclass(frozen=True)
class Done:
    """Every planned check has reported."""

    seconds: float


Message = Ready | Plan | Deadline | Started | Finished | Snapshot | Done
