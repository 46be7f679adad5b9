"""The ``@check`` registry: binds each implementation to its id in the catalogue.

A check is a pure function ``(ctx) -> Outcome`` (:mod:`torchvet.verdict`) registered with
:func:`check` under an id from :mod:`torchvet.checks.catalogue`. Importing an area
module registers its checks here; :mod:`torchvet.checks.suite` hands the filled registry
to the worker.
"""

from __future__ import annotations

from collections.abc import Callable

from ..unit.suite import CheckFunction
from .catalogue import CATALOGUE

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
