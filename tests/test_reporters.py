"""Terminal, JUnit and JSON reporters read results only; hand-built results in, text out."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from junitparser import Error, Failure, JUnitXml, Skipped

from torchvet.reporters import json_report, junit
from torchvet.reporters.terminal import TerminalReporter, use_color
from torchvet.results import CheckResult, RunReport, Status, UnitReport


def sample_run() -> RunReport:
    results = [
        CheckResult("forward.runs", Status.PASSED, "ok", duration=0.0),
        CheckResult("training.gradients", Status.FAILED,
                    "enc.weight received no gradient \x1b[31m\x00 <&> \"q\"",
                    "details\x07 line", "src/pkg/m.py", 12, 0.25),
        CheckResult("forward.determinism", Status.ERROR, "boom", "Traceback...", "src/m.py", 3),
        CheckResult("data.workers", Status.WARNED, "lambda transform", "", "src/d.py", 9),
        CheckResult("export.compile", Status.SKIPPED, "opt-in"),
        CheckResult("state.roundtrip", Status.XFAILED, "xfail (known): lists"),
        CheckResult("forward.shape", Status.XPASSED, "declared xfail but it passed"),
        CheckResult("training.overfit", Status.CANCELLED, "cancelled"),
    ]
    return RunReport([UnitReport("net", dist="pkg", target="pkg.m:make", results=results,
                                  output="print \x00 from user\n")],
                     seed=0, torch_version="2.13.0")


def test_junit_structure_and_escaping(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "junit.xml"
    junit.write(sample_run(), path)
    xml = JUnitXml.fromfile(str(path))
    suite = next(iter(xml))
    assert suite.name == "net" and suite.tests == 8
    cases = {case.name: case for case in suite}
    assert all(case.classname == "torchvet.net" for case in cases.values())
    assert cases["forward.runs"]._elem.get("time") == "0.000000"
    grad = cases["training.gradients"]
    assert grad._elem.get("file") == "src/pkg/m.py" and grad._elem.get("line") == "12"
    failure = grad.result[0]
    assert isinstance(failure, Failure)
    assert failure.message.startswith("enc.weight received no gradient")
    assert '<&> "q"' in failure.message and "\x00" not in failure.message
    assert isinstance(cases["forward.determinism"].result[0], Error)
    assert isinstance(cases["export.compile"].result[0], Skipped)
    assert cases["state.roundtrip"].result[0].message.startswith("xfailed: ")
    assert isinstance(cases["forward.shape"].result[0], Failure)
    assert not cases["data.workers"].result  # a warning passes under fail-on failure
    system_out = suite._elem.find("system-out")
    assert system_out is not None and "print" in system_out.text


def test_junit_warning_fails_under_fail_on_warning() -> None:
    text = junit.render(sample_run(), fail_on="warning")
    xml = JUnitXml.fromstring(text)
    case = next(c for c in next(iter(xml)) if c.name == "data.workers")
    assert isinstance(case.result[0], Failure)


def test_json_file_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "r.json"
    json_report.write(sample_run(), path)
    assert json_report.read(path).to_dict() == sample_run().to_dict()
    (tmp_path / "bad.json").write_text("[1, 2]")
    with pytest.raises(json_report.ReportError, match="not a torchvet JSON report"):
        json_report.read(tmp_path / "bad.json")


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
