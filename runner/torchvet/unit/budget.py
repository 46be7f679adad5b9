"""Per-check time budgets: a check that outlives its budget is stopped and skipped.

The worker runs every check under :func:`time_budget` with the budget declared in
``[tool.torchvet] budgets``, else the check's default (the catalogue's ``CheckMeta.budget``,
handed over with the suite); expensive checks also scale their own work to fit it.
"""

from __future__ import annotations

import contextlib
import signal
import threading
import time
from collections.abc import Iterator, Mapping
from typing import Any

from ..verdict import first_match

DEFAULT_BUDGET = 60.0  # seconds, for a check with no default of its own


class BudgetExceeded(BaseException):
    """Raised in the main thread when a check outlives its budget.

    A BaseException, so that torch's own ``except Exception`` handlers do not swallow it.
    """


@contextlib.contextmanager
def time_budget(seconds: float) -> Iterator[None]:
    """Raise :class:`BudgetExceeded` after ``seconds`` (main thread, POSIX; else no limit).

    An outer alarm (pytest-timeout, for one) that would fire first is left alone; a later
    one is re-armed with its remaining time afterwards.
    """
    if (threading.current_thread() is not threading.main_thread()
            or not hasattr(signal, "setitimer") or seconds <= 0):
        yield
        return
    outer_delay, outer_interval = signal.getitimer(signal.ITIMER_REAL)
    if outer_delay and outer_delay <= seconds:
        yield
        return

    def expire(signum: int, frame: Any) -> None:
        raise BudgetExceeded(seconds)

    previous = signal.signal(signal.SIGALRM, expire)
    started = time.monotonic()
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous if previous is not None else signal.SIG_DFL)
        if outer_delay:
            left = max(outer_delay - (time.monotonic() - started), 1e-3)
            signal.setitimer(signal.ITIMER_REAL, left, outer_interval)


def budget_for(check_id: str, declared: Mapping[str, float] | None = None,
               defaults: Mapping[str, float] | None = None) -> float:
    """Seconds ``check_id`` may take: a declared budget (id, area or glob), else its
    default (by id)."""
    match = first_match(check_id, declared or {})
    if match is not None:
        return float(match[1])
    return float((defaults or {}).get(check_id, DEFAULT_BUDGET))


def over_budget_reason(check_id: str, seconds: float) -> str:
    return (
        f"{check_id} did not finish within its {seconds:g} s budget and was stopped; raise "
        f'it with [tool.torchvet] budgets = {{ "{check_id}" = {max(2 * seconds, 1):g} }} or '
        f'skip it (skip = {{ "{check_id}" = "too slow here" }})'
    )
