"""unit.budget: a check that outlives its budget is interrupted, an alarm set by someone
else (pytest-timeout, for one) survives, and the budget comes from the declaration or
the catalogue."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from typing import Any

import pytest

from tests.fixtures.models_blocking import block_until_the_alarm
from torchvet.checks.catalogue import CATALOGUE
from torchvet.checks.suite import SUITE
from torchvet.unit import budget


@pytest.fixture
def outer_alarm() -> Iterator[list[int]]:
    """An alarm handler of someone else's that records whether it fired; restored after."""
    fired: list[int] = []
    previous = signal.signal(signal.SIGALRM, lambda *args: fired.append(1))
    previous_timer = signal.getitimer(signal.ITIMER_REAL)
    try:
        yield fired
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
        if previous_timer[0]:
            signal.setitimer(signal.ITIMER_REAL, *previous_timer)


def test_time_budget_interrupts_a_block_that_never_ends() -> None:
    with pytest.raises(budget.BudgetExceeded), budget.time_budget(0.05):
        block_until_the_alarm()


def test_budget_exceeded_escapes_except_exception() -> None:
    """torch and user code catch Exception; the budget must still get through."""
    assert not issubclass(budget.BudgetExceeded, Exception)
    caught: list[BaseException] = []
    with pytest.raises(budget.BudgetExceeded), budget.time_budget(0.05):
        try:
            block_until_the_alarm()
        except Exception as exc:  # what a swallowing handler in user code does
            caught.append(exc)
    assert not caught


def test_a_later_outer_alarm_is_rearmed_with_its_remaining_time(outer_alarm: list[int]
                                                                 ) -> None:
    signal.setitimer(signal.ITIMER_REAL, 30.0)
    with pytest.raises(budget.BudgetExceeded), budget.time_budget(0.05):
        block_until_the_alarm()
    remaining, _ = signal.getitimer(signal.ITIMER_REAL)
    assert 0 < remaining <= 30  # re-armed, less the time the block took
    handler: Any = signal.getsignal(signal.SIGALRM)
    handler(signal.SIGALRM, None)  # the outer handler is back in place
    assert outer_alarm == [1]


def test_an_earlier_outer_alarm_is_left_alone(outer_alarm: list[int]) -> None:
    signal.setitimer(signal.ITIMER_REAL, 20.0)
    with budget.time_budget(60.0):
        handler: Any = signal.getsignal(signal.SIGALRM)
        handler(signal.SIGALRM, None)  # still the outer handler: no budget was armed
        assert outer_alarm == [1]
        assert signal.getitimer(signal.ITIMER_REAL)[0] > 15


def test_no_budget_means_no_alarm() -> None:
    before = signal.getsignal(signal.SIGALRM)
    with budget.time_budget(0):
        assert signal.getsignal(signal.SIGALRM) is before


def test_budget_for_prefers_the_declared_one_then_the_checks_default() -> None:
    defaults = SUITE.budgets
    assert budget.budget_for("training.overfit", {}, defaults) == CATALOGUE[
        "training.overfit"].budget
    assert budget.budget_for("training.overfit", {"training": 5}, defaults) == 5.0
    assert budget.budget_for("export.compile", {"export.*": 7, "export.compile": 9},
                             defaults) == 7.0
    assert budget.budget_for("no.such_check", {}, defaults) == budget.DEFAULT_BUDGET == 60.0


def test_over_budget_reason_names_both_fixes() -> None:
    reason = budget.over_budget_reason("export.compile", 300)
    assert "did not finish within its 300 s budget" in reason
    assert 'budgets = { "export.compile" = 600 }' in reason
    assert 'skip = { "export.compile" = "too slow here" }' in reason
