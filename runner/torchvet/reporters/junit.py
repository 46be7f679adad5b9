"""JUnit XML: one <testsuite> per model/dataset, one <testcase> per check.

A unit that could not be built (or whose worker died before its checks) is one errored
testcase named ``unit``; its checks are skipped, citing it.

The run is cleaned first (:func:`~torchvet.results.clean_run`: no character XML cannot
hold) and the file written through :mod:`.files` (never through a symlink)."""

from __future__ import annotations

from pathlib import Path

from junit_xml import TestCase, TestSuite, to_xml_report_string

from ..results import CheckResult, RunReport, Status, UnitReport, clean_run
from . import files


class _Seconds(float):
    """junit-xml drops ``time`` when it is falsy; a duration of 0 is still a duration."""

    def __bool__(self) -> bool:
        return True


def _case(report: UnitReport, result: CheckResult, fail_on: str) -> TestCase:
    case = TestCase(
        name=result.id,
        classname=f"torchvet.{report.display_name}",
        elapsed_sec=_Seconds(max(result.duration, 0.0)),
        file=result.file,
        line=str(result.line) if result.line is not None else None,
    )
    message = result.message
    details = result.details or result.message
    status = result.status
    if status is Status.FAILED or status is Status.XPASSED:
        case.add_failure_info(message=message, output=details, failure_type=status.value)
    elif status is Status.ERROR:
        case.add_error_info(message=message, output=details, error_type="error")
    elif status is Status.WARNED:
        if fail_on == "warning":
            case.add_failure_info(message=message, output=details, failure_type="warning")
        else:
            case.stdout = f"warning: {message}\n{result.details}".rstrip()
    elif status in (Status.SKIPPED, Status.XFAILED, Status.CANCELLED, Status.NOT_RUN):
        # a not-run check says so itself ("not run: the unit could not be built")
        prefix = "" if status in (Status.SKIPPED, Status.NOT_RUN) else f"{status.value}: "
        case.add_skipped_info(message=prefix + message, output=result.details or None)
    return case


def build_suites(run: RunReport, fail_on: str = "failure") -> list[TestSuite]:
    suites = []
    for report in run.reports:
        suites.append(
            TestSuite(
                name=report.display_name,
                test_cases=[_case(report, r, fail_on) for r in report.results],
                package=report.dist or None,
                file=report.file,
                stdout=report.output or None,
                properties={"kind": report.kind, "factory": report.target,
                            "torch": run.torch_version, "seed": str(run.seed)},
            )
        )
    return suites


def render(run: RunReport, fail_on: str = "failure") -> str:
    return to_xml_report_string(build_suites(clean_run(run), fail_on), prettyprint=True)


def write(run: RunReport, path: str | Path, fail_on: str = "failure") -> None:
    files.write_text(path, render(run, fail_on))
