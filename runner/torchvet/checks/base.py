"""How a check states its verdict, and the decorator that binds it to the catalogue.

A check is a pure function ``(ctx) -> Outcome`` registered with :func:`check` under an
id from :mod:`torchvet.checks.catalogue`. It returns :func:`passed`, :func:`failed` or
:func:`warned`, or raises :class:`Skip`. An exception escaping a check is recorded as
``error`` by the runner, pointing at the innermost project frame.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..results import Status
from .catalogue import CATALOGUE

if TYPE_CHECKING:
    from ..unit.context import CheckContext

Location = tuple[str, int] | None


@dataclass
class Outcome:
    status: Status
    message: str = ""
    details: str = ""
    where: Location = None
    data: dict[str, Any] = field(default_factory=dict)  # curves, tables (CheckResult.data)


class Skip(Exception):
    """Raise from a check to skip it; the message is the reason shown to the user."""


class DependencyFailed(Skip):
    """A shared computation this check needs already failed in another check."""


def passed(message: str = "", details: str = "", data: dict[str, Any] | None = None
           ) -> Outcome:
    return Outcome(Status.PASSED, message, details, None, data or {})


def failed(message: str, details: str = "", where: Location = None,
           data: dict[str, Any] | None = None) -> Outcome:
    return Outcome(Status.FAILED, message, details, where, data or {})


def warned(message: str, details: str = "", where: Location = None,
           data: dict[str, Any] | None = None) -> Outcome:
    return Outcome(Status.WARNED, message, details, where, data or {})


CheckFunction = Callable[["CheckContext"], Outcome]
IMPLEMENTATIONS: dict[str, CheckFunction] = {}


def check(check_id: str) -> Callable[[CheckFunction], CheckFunction]:
    """Bind an implementation to a catalogue id (the nox-style registry decorator)."""
    if check_id not in CATALOGUE:
        raise ValueError(f"check {check_id!r} is not in the catalogue (checks/catalogue.py)")

    def register(func: CheckFunction) -> CheckFunction:
        if check_id in IMPLEMENTATIONS:
            raise ValueError(f"check {check_id!r} is implemented twice")
        IMPLEMENTATIONS[check_id] = func
        return func

    return register
