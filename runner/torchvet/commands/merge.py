"""``torchvet merge``: the JSON reports of shards or matrix cells as one report."""

from __future__ import annotations

from collections.abc import Sequence

from ..github.console import commands_off
from ..options import FailOn
from ..reporters import json_report
from ..reporters.terminal import TerminalReporter
from ..results import exit_code_for, merge_runs
from ..session import write_reports


def merge(reports: Sequence[str], *, junit: str | None = None, json_path: str | None = None,
          fail_on: FailOn = FailOn.FAILURE) -> int:
    """Merge ``reports``, print the table, write the files asked for."""
    merged = merge_runs([json_report.read(path) for path in reports])
    with commands_off():
        terminal = TerminalReporter()
        terminal.header(f"torchvet merge · {len(reports)} report(s) · "
                        f"{len(merged.reports)} unit(s)")
        terminal.finish(merged, fail_on)
        write_reports(merged, terminal, fail_on, junit_path=junit, json_path=json_path)
    return exit_code_for(merged, fail_on)
