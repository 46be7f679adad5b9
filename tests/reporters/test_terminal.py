"""The terminal report: a line per unit, problems in full, then a table; colour only on
a terminal."""

from __future__ import annotations

import io

import pytest

from tests.helpers import broken_run, sample_run
from torchvet.reporters.terminal import TerminalReporter, use_color
from torchvet.results import CheckResult, RunReport, Status, UnitReport


def test_terminal_report_lists_problems_then_a_table() -> None:
    stream = io.StringIO()
    reporter = TerminalReporter(stream=stream, total=1, color=False)
    run = sample_run()
    reporter.unit_done(run.reports[0])
    reporter.finish(run)
    text = stream.getvalue()
    assert "[1/1] net (model)" in text and "ERROR" in text
    assert text.index("problems") < text.index("unit ") < text.rindex("1 failed")
    assert "at src/pkg/m.py:12" in text
    assert "captured output: net" in text
    assert "\x1b[" not in text


def test_colour_only_on_a_tty_and_never_with_no_color(monkeypatch: pytest.MonkeyPatch) -> None:
    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.delenv("FORCE_COLOR", raising=False)
    assert use_color(Tty()) and not use_color(io.StringIO())
    monkeypatch.setenv("NO_COLOR", "1")
    assert not use_color(Tty())


def _with_curve() -> RunReport:
    result = CheckResult("training.overfit", Status.FAILED, "levels off", "curve", "m.py", 3,
                         data={"curves": {"Adam lr 0.01": [2.3, 1.9, 1.6, 1.6]}})
    return RunReport([UnitReport("net", results=[result])])


def test_a_problem_shows_its_loss_curve_as_a_sparkline() -> None:
    stream = io.StringIO()
    TerminalReporter(stream=stream, color=False).finish(_with_curve())
    assert "  Adam lr 0.01  █▄▁▁  2.3 -> 1.6" in stream.getvalue()


def test_the_sparkline_falls_back_to_ascii_where_blocks_cannot_be_encoded() -> None:
    raw = io.BytesIO()
    stream = io.TextIOWrapper(raw, encoding="latin-1")  # no block characters
    TerminalReporter(stream=stream, color=False).finish(_with_curve())
    stream.flush()
    assert b"Adam lr 0.01  #:__  2.3 -> 1.6" in raw.getvalue()


def test_an_errored_unit_is_one_problem_and_the_run_reads_as_units_and_checks() -> None:
    stream = io.StringIO()
    reporter = TerminalReporter(stream=stream, total=3, color=False, show_output=False)
    run = broken_run()
    reporter.unit_done(run.reports[0])
    reporter.finish(run)
    text = stream.getvalue()
    assert "[1/3] sig (model)" in text and "1 error, 30 not run" in text
    assert text.count("ERROR sig (the unit)") == 1 and "not run:" not in text
    # failures (the model is wrong) before errors (it could not be checked)
    assert text.index("FAILED head") < text.index("ERROR code") < text.index("ERROR sig")
    assert any(ln.startswith("unit ") and ln.endswith("not run     time")
               for ln in text.splitlines())
    assert text.rstrip().splitlines()[-1].strip("= ").startswith(
        "3 units: 1 failed, 2 errored · checks: 2 failed, 1 passed, 60 not run in ")
