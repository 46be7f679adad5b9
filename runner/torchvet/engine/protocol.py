"""What a worker tells the parent about its unit, one message at a time.

A worker sends these over a pipe as it goes, so a crash loses nothing already decided:
``Ready`` once it runs, ``Plan``/``Deadline`` when building the unit changes them,
``Footprint`` once the unit is built (then it waits for the parent's ``Grant``, the one
message that travels the other way), ``Started`` and ``Finished`` around every check,
``Snapshot`` when the job asks for the unit's snapshot, and ``Done`` at the end. The
parent dispatches on the type; nothing here imports torch.

A check's ``error`` that arrives without a ``Started`` is the unit's: the worker could
not build it (import, factory call, spec) and gives that reason for every check; the
parent keeps it once, as the unit's own error (``results.UNIT_ID``), and marks the
checks ``not_run``.
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
class Footprint:
    """The unit is built: the memory it holds and what its checks need; the worker now
    waits for a :class:`Grant` before running them.

    ``baseline``: bytes the worker holds beyond what it shares with the fork server;
    ``need``: bytes beyond the baseline its most demanding planned check is expected to
    use; ``weights``: parameter and buffer bytes (what the messages quote)."""

    baseline: int
    need: int
    weights: int = 0


@dataclass(frozen=True)
class Grant:
    """Parent -> worker: the bytes beyond its baseline the unit may use; a check that
    needs more is skipped. ``capacity`` (the usable memory of the run) and ``others``
    (held by the units running beside it) are what a skip's message quotes."""

    bytes: int
    capacity: int = 0
    others: int = 0


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
    peak_memory: int = 0  # the unit's own peak resident bytes (0: not measured)


Message = Ready | Plan | Deadline | Footprint | Started | Finished | Snapshot | Done
