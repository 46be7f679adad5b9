"""``torchvet docker``: run the action's image on a project exactly as the GitHub Actions
runner does, locally, for one torch or a matrix of them, and merge the cells' reports
into one terminal table, JUnit and JSON report.

The pieces live in :mod:`torchvet.action.docker`: ``plan`` (what each container gets,
decided without a daemon), ``client`` (the daemon and the image), ``matrix`` (running the
cells and reading back what they wrote), ``logs`` (the container's log on the terminal)
and ``workspace`` (the snapshot a cell mounts). Here: :func:`docker`, the command.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO

from ..action.docker.client import connect, daemon_cpus, load_docker, open_image
from ..action.docker.logs import Printer
from ..action.docker.matrix import Cell, Matrix, merge_cells, plan_cells, summaries
from ..action.docker.plan import DockerOptions, check_options, check_project, default_image
from ..errors import ExitCode
from ..options import FailOn
from ..project.config import declared_fail_on
from ..reporters.terminal import TerminalReporter
from ..results import exit_code_for
from ..session import parse_shard, terminate_as_interrupt, validate_checks, write_reports


def connect_default() -> tuple[Any, Any]:
    """The ``docker`` package and a client of the daemon it finds."""
    sdk = load_docker()
    return sdk, connect(sdk)


def docker(options: DockerOptions, stream: TextIO | None = None,
           connect_docker: Callable[[], tuple[Any, Any]] = connect_default) -> int:
    """The whole command; raises a :class:`~torchvet.errors.UsageError` (a
    :class:`~.client.DockerError`, a :class:`~.plan.PlanError`, or one of the checks'
    options, as ``torchvet run`` raises it) for what the user must fix, returns the exit
    code otherwise."""
    printer = Printer(stream)
    check_options(options)
    run = options.run
    validate_checks(run.checks)  # as torchvet run checks its options
    if run.shard:
        parse_shard(run.shard)
    root = check_project(options)
    if options.gpus and run.device == "cpu":
        printer.note("--gpus without --device cuda: the checks run on the CPU")

    with terminate_as_interrupt():
        try:
            sdk, client = connect_docker()
            image = open_image(sdk, client, options, printer, default_image())
        except KeyboardInterrupt:
            printer.note("interrupted before any container started")
            return ExitCode.INTERRUPTED
        cells, at_once = plan_cells(options, daemon_cpus(client))
        where = "in place" if options.in_place else "as a snapshot (your tree is not written)"
        printer.note(f"{image} on {root}, mounted {where} · "
                     f"{len(cells)} cell(s), {at_once} at a time"
                     + (f" · torch {', '.join(options.torch)}" if options.torch else ""))
        matrix = Matrix(sdk, client, image, options, root, printer)
        try:
            matrix.run(cells, at_once)
        except KeyboardInterrupt:  # between the cells' end and here
            matrix.interrupt()
    for cell in cells:  # never started, or stopped before it reported
        if cell.report is None:
            cell.cancelled = True
            cell.stand_in_report()
    return report(options, cells, image, root, printer,
                  interrupted=matrix.interrupted or any(c.cancelled for c in cells))


def report(options: DockerOptions, cells: list[Cell], image: str, root: Path,
           printer: Printer, *, interrupted: bool) -> int:
    """The merged terminal table, JUnit, JSON and job summaries; the exit code."""
    fail_on = options.run.fail_on or FailOn(declared_fail_on(root / options.subpath)
                                            or FailOn.FAILURE)
    merged = merge_cells(cells)
    terminal = TerminalReporter(stream=printer.stream, total=len(merged.reports))
    terminal.write()
    terminal.header(f"torchvet docker · {image} · {len(cells)} cell(s)"
                    + (f": {', '.join(c.label for c in cells)}" if options.torch else ""))
    terminal.finish(merged, fail_on)
    write_reports(merged, terminal, fail_on, junit_path=options.run.junit,
                  json_path=options.run.json_path)
    if options.summary:
        target = Path(options.summary)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(summaries(cells), encoding="utf-8")
        printer.line(f"job summary: {options.summary}")
    if interrupted:
        kept = [p for p in (options.run.junit, options.run.json_path, options.summary) if p]
        print("torchvet docker: interrupted: every container was stopped and removed"
              + (f"; partial reports in {', '.join(kept)}" if kept else ""), file=sys.stderr)
        return ExitCode.INTERRUPTED
    code = exit_code_for(merged, fail_on)
    if any(c.setup_failed for c in cells):
        code = max(code, ExitCode.FAILED)  # as in CI: a cell that could not run fails
    return code
