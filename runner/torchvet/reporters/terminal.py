"""The terminal report: a line per unit as it finishes, then failures, then a table."""

from __future__ import annotations

import os
import re
import shutil
import sys
from collections import Counter
from typing import TextIO

from ..results import CheckResult, RunReport, Status, UnitReport
from .evidence import curve_lines

_COLORS = {
    Status.PASSED: "32", Status.FAILED: "31", Status.ERROR: "31;1", Status.XPASSED: "31",
    Status.WARNED: "33", Status.SKIPPED: "33", Status.XFAILED: "33", Status.CANCELLED: "35",
    Status.NOT_RUN: "35",
}
_ORDER = [Status.FAILED, Status.ERROR, Status.XPASSED, Status.WARNED, Status.PASSED,
          Status.SKIPPED, Status.XFAILED, Status.NOT_RUN, Status.CANCELLED]
COLUMNS = [Status.PASSED, Status.FAILED, Status.ERROR, Status.WARNED, Status.SKIPPED,
           Status.NOT_RUN]  # the per-unit table's, here and in the job summary
_UNIT_WORDS = {Status.ERROR: "errored"}
OUTPUT_LINES = 30


_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


def printable(text: str) -> str:
    """User-derived text with control characters (ANSI escapes, NUL, CR) made visible, so
    a message cannot rewrite the terminal or hide part of the report."""
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", text)


def use_color(stream: TextIO) -> bool:
    """Colour only on a TTY, never with NO_COLOR set (https://no-color.org)."""
    if os.environ.get("NO_COLOR"):
        return False
    if os.environ.get("FORCE_COLOR"):
        return True
    return bool(getattr(stream, "isatty", lambda: False)())


def group_problems(bad: list[tuple[UnitReport, CheckResult]]
                   ) -> list[tuple[UnitReport, list[CheckResult]]]:
    """Checks of one unit that failed for the same reason are shown once; failures
    before errors before warnings."""
    groups: dict[tuple[object, ...], tuple[UnitReport, list[CheckResult]]] = {}
    for report, result in bad:
        key = (report.display_name, result.status, result.message.removeprefix("not run: "),
               result.file, result.line)
        groups.setdefault(key, (report, []))[1].append(result)
    return sorted(groups.values(),
                  key=lambda g: (g[1][0].status.problem_rank, g[0].display_name))


def count_phrase(counts: Counter[Status], words: dict[Status, str] | None = None) -> str:
    """``2 failed, 40 passed, 58 not run``: the non-zero counts, worst first."""
    words = words or {}
    parts = [f"{counts[s]} {words.get(s, s.label)}" for s in _ORDER if counts.get(s)]
    return ", ".join(parts) or "no checks"


def run_phrase(run: RunReport) -> str:
    """The run's headline, as units and as checks: ``3 units: 1 failed, 2 errored ·
    checks: 2 failed, 40 passed, 58 not run``. A unit that could not be built or whose
    worker died is one errored unit; its checks are ``not run``, not errors."""
    n = len(run.reports)
    units = count_phrase(run.unit_counts(), _UNIT_WORDS) if n else "none"
    return f"{n} unit{'s' if n != 1 else ''}: {units} · checks: {count_phrase(run.check_counts())}"


class TerminalReporter:
    """Observer printing progress and the final report to ``stream``."""

    def __init__(self, stream: TextIO | None = None, total: int = 0,
                 color: bool | None = None, show_output: bool = True) -> None:
        self.stream = stream or sys.stdout
        self.total = total
        self.done = 0
        self.color = use_color(self.stream) if color is None else color
        self.show_output = show_output
        self.width = min(shutil.get_terminal_size((100, 20)).columns, 120)

    def paint(self, text: str, status: Status | None = None, code: str | None = None) -> str:
        code = code or (_COLORS.get(status) if status else None)
        return f"\x1b[{code}m{text}\x1b[0m" if self.color and code else text

    def write(self, text: str = "") -> None:
        self.stream.write(text + "\n")
        self.stream.flush()

    def header(self, text: str) -> None:
        self.write(self.paint(text, code="1"))

    def unit_done(self, report: UnitReport) -> None:
        self.done += 1
        status = report.status
        width = len(str(self.total or self.done))
        progress = f"[{self.done:>{width}}/{self.total or self.done}]"
        label = status.value.upper()
        name = printable(f"{report.display_name} ({report.kind})")
        self.write(
            f"{progress} {name:<40} {self.paint(label, status):<7}  "
            f"{count_phrase(report.counts())}  ({report.duration:.2f}s)"
        )

    def finish(self, run: RunReport, fail_on: str = "failure") -> None:
        bad = [(m, r) for m, r in run.all_results()
               if r.status.is_bad or r.status is Status.WARNED]
        if bad:
            self.rule("problems")
            for report, results in group_problems(bad):
                self.problem(report, results)
            if self.show_output:
                self.outputs(run, {m.display_name for m, _ in bad})
        self.table(run)
        self.slowest(run)
        counts = run.counts()
        summary = f"{run_phrase(run)} in {run.duration:.2f}s"
        if run.interrupted:
            summary += " (interrupted)"
        worst = Status.FAILED if any(s.is_bad for s in counts) else (
            Status.WARNED if counts.get(Status.WARNED) else Status.PASSED)
        self.rule(summary, worst)

    def rule(self, title: str, status: Status | None = None) -> None:
        text = f" {title} "
        pad = max(4, self.width - len(text))
        self.write(self.paint("=" * (pad // 2) + text + "=" * (pad - pad // 2), status))

    def problem(self, report: UnitReport, results: list[CheckResult]) -> None:
        result = results[0]
        ids = ", ".join(r.id for r in results[:4]) + (
            f" and {len(results) - 4} more" if len(results) > 4 else "")
        where = " (the unit)" if result.is_unit else f" · {ids}"
        title = f"{result.status.value.upper()} {report.display_name}{where}"
        self.write(self.paint(printable(title), result.status))
        self.write(f"  {printable(result.message)}")
        if result.file:
            self.write(f"  at {printable(result.file)}:{result.line or 1}")
        self.curves(result)
        if result.details and result.details.strip() != result.message.strip():
            for line in result.details.rstrip().splitlines()[-25:]:
                self.write(f"    {printable(line)}")
        self.write()

    def curves(self, result: CheckResult) -> None:
        """The result's loss curves as sparklines (ASCII where the stream cannot encode
        block characters)."""
        encoding = getattr(self.stream, "encoding", None) or "utf-8"
        try:
            "▁█".encode(encoding)
            ascii_only = False
        except (UnicodeEncodeError, LookupError):
            ascii_only = True
        for line in curve_lines(result.data, ascii_only):
            self.write(f"  {printable(line)}")

    def outputs(self, run: RunReport, names: set[str]) -> None:
        for report in run.reports:
            if report.display_name in names and report.output.strip():
                self.rule(f"captured output: {report.display_name}")
                lines = report.output.rstrip().splitlines()
                if len(lines) > OUTPUT_LINES:
                    self.write(f"[... {len(lines) - OUTPUT_LINES} earlier lines; the JSON "
                               "report has them all ...]")
                for line in lines[-OUTPUT_LINES:]:
                    self.write(printable(line))

    def slowest(self, run: RunReport, top: int = 3) -> None:
        """Where the time went: the slowest units and checks (what to skip or budget)."""
        if len(run.reports) < 2 and sum(len(r.results) for r in run.reports) < 2:
            return
        units = sorted(run.reports, key=lambda r: -r.duration)[:top]
        checks = sorted(((r.duration, m.display_name, r.id) for m, r in run.all_results()),
                        reverse=True)[:top]
        self.write("slowest units: " + ", ".join(
            f"{printable(r.display_name)} {r.duration:.2f}s" for r in units))
        self.write("slowest checks: " + ", ".join(
            f"{printable(name)} · {cid} {seconds:.2f}s" for seconds, name, cid in checks))

    def table(self, run: RunReport) -> None:
        if not run.reports:
            return
        name_width = max(12, *(len(r.display_name) for r in run.reports))
        head = f"{'unit':<{name_width}}  {'kind':<7}  {'status':<9}" + "".join(
            f"{s.label:>8}" for s in COLUMNS) + f"{'time':>9}"
        self.write()
        self.write(head)
        self.write("-" * len(head))
        for report in run.reports:
            counts = report.counts()
            status = report.status
            cells = "".join(f"{counts.get(s, 0):>8}" for s in COLUMNS)
            self.write(
                f"{report.display_name:<{name_width}}  {report.kind:<7}  "
                f"{self.paint(f'{status.value:<9}', status)}{cells}{report.duration:>8.2f}s"
            )
