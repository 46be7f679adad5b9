"""JUnit XML: one testsuite per unit, one testcase per check, escaped, parsed back with
junitparser (the parser publish-unit-test-result-action uses)."""

from __future__ import annotations

from pathlib import Path

from junitparser import Error, Failure, JUnitXml, Skipped

from tests.helpers import broken_run, sample_run
from torchvet.reporters import junit


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


def test_an_errored_unit_is_one_errored_testcase_and_its_checks_are_skipped() -> None:
    xml = JUnitXml.fromstring(junit.render(broken_run()))
    suites = {suite.name: suite for suite in xml}
    cases = list(suites["sig"])
    errored = [c for c in cases if c.result and isinstance(c.result[0], Error)]
    assert [c.name for c in errored] == ["unit"]
    assert errored[0].result[0].message.startswith("the worker process was killed by signal 11")
    skipped = [c for c in cases if c.result and isinstance(c.result[0], Skipped)]
    assert len(skipped) == 30 and {c.result[0].message for c in skipped} == {
        "not run: the unit's worker died before its checks ran"}
    head = {c.name: c for c in suites["head"]}
    assert isinstance(head["training.update"].result[0], Failure)
