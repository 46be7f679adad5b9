"""The outcome vocabulary: how a check states its verdict, and which check a declared
pattern (a skip, an xfail, a budget) selects.

A check returns :func:`passed`, :func:`failed` or :func:`warned`, or raises
:class:`Skip`; a shared computation that already failed in another check raises
:class:`DependencyFailed`. The bottom layer of the package (pytest's ``outcomes`` is the
model): it imports nothing of torchvet but :mod:`torchvet.results`, so the worker's
runtime, the checks and the parent side all speak it without importing each other.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from .results import Status

T = TypeVar("T")

Location = tuple[str, int] | None  # (project-relative file, line) a verdict points at


@dataclass
class Outcome:
    """What a check decided: a status, its message, and where it points."""

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


def matches(check_id: str, pattern: str) -> bool:
    """A pattern selects by area (``forward``), id (``forward.runs``) or glob."""
    area = check_id.split(".", 1)[0]
    return pattern in (check_id, area) or fnmatch.fnmatchcase(check_id, pattern)


def first_match(check_id: str, patterns: Mapping[str, T]) -> tuple[str, T] | None:
    """(pattern, value) of the first pattern selecting ``check_id`` (a skip reason, a
    budget, ...)."""
    for pattern, reason in patterns.items():
        if matches(check_id, pattern):
            return pattern, reason
    return None
