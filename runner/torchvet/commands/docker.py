"""``torchvet docker``: run the action's image on a project exactly as the GitHub Actions
runner does, locally, for one torch or a matrix of them, and merge the cells' reports
into one terminal table, JUnit and JSON report.

The pieces: :mod:`.plan` (what each container gets, decided without a daemon),
:mod:`.client` (the daemon and the image), :mod:`.matrix` (running the cells and reading
back what they wrote), :mod:`.logs` (the container's log on the terminal) and
:mod:`.workspace` (the snapshot a cell mounts). Here: the command line and :func:`run`.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO

import click

from ...errors import ExitCode
from ...project.config import declared_fail_on
from ...reporters.terminal import TerminalReporter
from ...results import exit_code_for
from ...session import parse_shard, terminate_as_interrupt, validate_checks, write_reports
from ..inputs import DEVICES, FAIL_ON
from .client import connect, daemon_cpus, load_docker, open_image
from .logs import Printer
from .matrix import Cell, Matrix, merge_cells, plan_cells, summaries
from .plan import (
    BUILD_TAG,
    DockerOptions,
    check_options,
    check_project,
    default_image,
    parse_torch_versions,
    split_list,
)


def connect_default() -> tuple[Any, Any]:
    """The ``docker`` package and a client of the daemon it finds."""
    docker = load_docker()
    return docker, connect(docker)


def run(options: DockerOptions, stream: TextIO | None = None,
        connect_docker: Callable[[], tuple[Any, Any]] = connect_default) -> int:
    """The whole command; raises a :class:`~torchvet.errors.UsageError` (a
    :class:`~.client.DockerError`, a :class:`~.plan.PlanError`, or one of the checks'
    options, as ``torchvet run`` raises it) for what the user must fix, returns the exit
    code otherwise."""
    printer = Printer(stream)
    check_options(options)
    validate_checks(split_list(options.checks))  # as torchvet run checks its options
    if options.shard:
        parse_shard(options.shard)
    root = check_project(options)
    if options.gpus and options.device == "cpu":
        printer.note("--gpus without --device cuda: the checks run on the CPU")

    with terminate_as_interrupt():
        try:
            docker, client = connect_docker()
            image = open_image(docker, client, options, printer, default_image())
        except KeyboardInterrupt:
            printer.note("interrupted before any container started")
            return ExitCode.INTERRUPTED
        cells, at_once = plan_cells(options, daemon_cpus(client))
        where = "in place" if options.in_place else "as a snapshot (your tree is not written)"
        printer.note(f"{image} on {root}, mounted {where} · "
                     f"{len(cells)} cell(s), {at_once} at a time"
                     + (f" · torch {', '.join(options.torch)}" if options.torch else ""))
        matrix = Matrix(docker, client, image, options, root, printer)
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
    fail_on = options.fail_on or declared_fail_on(root / options.subpath) or "failure"
    merged = merge_cells(cells)
    terminal = TerminalReporter(stream=printer.stream, total=len(merged.reports))
    terminal.write()
    terminal.header(f"torchvet docker · {image} · {len(cells)} cell(s)"
                    + (f": {', '.join(c.label for c in cells)}" if options.torch else ""))
    terminal.finish(merged, fail_on)
    write_reports(merged, terminal, fail_on, junit_path=options.junit,
                  json_path=options.json_path)
    if options.summary:
        target = Path(options.summary)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(summaries(cells), encoding="utf-8")
        printer.line(f"job summary: {options.summary}")
    if interrupted:
        kept = [p for p in (options.junit, options.json_path, options.summary) if p]
        print("torchvet docker: interrupted: every container was stopped and removed"
              + (f"; partial reports in {', '.join(kept)}" if kept else ""), file=sys.stderr)
        return ExitCode.INTERRUPTED
    code = exit_code_for(merged, fail_on)
    if any(c.setup_failed for c in cells):
        code = max(code, ExitCode.FAILED)  # as in CI: a cell that could not run fails
    return code


# --------------------------------------------------------------------------- the command


@click.command("docker", context_settings={"max_content_width": 100})
@click.argument("path", default=".", type=click.Path(file_okay=False, dir_okay=True))
@click.option("--checks", multiple=True, metavar="PATTERN",
              help="Checks to run (input checks): areas, ids or globs; -prefix excludes. "
                   "Repeatable or comma-separated.")
@click.option("-k", "--models", multiple=True, metavar="GLOB",
              help="Only factories whose name matches (input models).")
@click.option("--exclude", multiple=True, metavar="GLOB",
              help="Leave out factories whose name matches (input exclude).")
@click.option("--seed", type=click.IntRange(min=0), default=None, help="Input seed.")
@click.option("--fail-on", type=click.Choice(FAIL_ON), default=None,
              help="What makes the exit code 1 (input fail-on) [default: the project's "
                   "fail_on, else failure].")
@click.option("--timeout", type=click.FloatRange(min=0, min_open=True), default=None,
              metavar="SECONDS", help="Per-unit time limit (input timeout).")
@click.option("-j", "--jobs", type=click.IntRange(min=1), default=None,
              help="Units checked at once in total: at most N matrix cells run at a time "
                   "and share N (input jobs) [default: the daemon's cores].")
@click.option("--shard", metavar="I/N", default=None, help="Input shard.")
@click.option("--changed-since", metavar="REF", default=None,
              help="Input changed-since: only the units a change since this git ref can "
                   "affect.")
@click.option("--device", type=click.Choice(DEVICES), default="cpu",
              show_default=True, help="Input device; cuda needs --gpus and a CUDA torch.")
@click.option("--junit", type=click.Path(dir_okay=False), default=None,
              help="Write the merged JUnit XML here (a testsuite per unit and torch).")
@click.option("--json", "json_path", type=click.Path(dir_okay=False), default=None,
              help="Write the merged JSON report here.")
@click.option("--summary", type=click.Path(dir_okay=False), default=None,
              help="Write the cells' job summaries (Markdown) here.")
@click.option("--torch", "torch", multiple=True, metavar="VERSIONS",
              help="A matrix: one container per torch version (input torch-version), "
                   "e.g. --torch 2.3.1,2.4.1. Default: the image's torch.")
@click.option("--torch-index-url", metavar="URL", default=None,
              help="Index torch is installed from (input torch-index-url; with --build also "
                   "the build arg TORCH_INDEX_URL), e.g. https://download.pytorch.org/whl/"
                   "cu121 [default: the image's, the CPU wheels].")
@click.option("--install", metavar="ARGS", default=None,
              help="Input install: pip arguments, or none [default: .].")
@click.option("--install-command", metavar="CMD", default=None, help="Input install-command.")
@click.option("--path", "subpath", metavar="SUBDIR", default=".", show_default=True,
              help="Input path: the project's directory inside PATH (monorepos).")
@click.option("--image", metavar="NAME", default=None,
              help=f"Image to run [default: {default_image()}; with --build: "
                   f"{BUILD_TAG}, the tag built].")
@click.option("--build", is_flag=True,
              help="Build the image from the action's own Dockerfile first.")
@click.option("--context", metavar="DIR", default=None,
              help="With --build: the torchvet sources [default: this installation's].")
@click.option("--python-version", metavar="X.Y", default=None,
              help="With --build: build arg PYTHON_VERSION [default: the Dockerfile's].")
@click.option("--image-torch", metavar="VERSION", default=None,
              help="With --build: build arg TORCH_VERSION, the image's own torch.")
@click.option("--gpus", metavar="all|N|device=ID", default=None,
              help="GPUs for the containers (NVIDIA Container Toolkit), as docker run --gpus.")
@click.option("--network", metavar="NAME", default="host", show_default=True,
              help="Network of the containers and the build (the entrypoint pip-installs).")
@click.option("--in-place", is_flag=True,
              help="Mount PATH itself instead of a snapshot: pip's build files stay in it "
                   "and matrix cells run one at a time.")
@click.option("--raw-log", is_flag=True,
              help="Show the container's log as the runner gets it (workflow commands).")
def docker_command(path: str, checks: tuple[str, ...], models: tuple[str, ...],
                   exclude: tuple[str, ...], seed: int | None, fail_on: str | None,
                   timeout: float | None, jobs: int | None, shard: str | None,
                   changed_since: str | None, device: str,
                   junit: str | None, json_path: str | None, summary: str | None,
                   torch: tuple[str, ...], torch_index_url: str | None,
                   install: str | None, install_command: str | None, subpath: str,
                   image: str | None, build: bool, context: str | None,
                   python_version: str | None, image_torch: str | None, gpus: str | None,
                   network: str, in_place: bool, raw_log: bool) -> None:
    """Run the GitHub Action's image on the project at PATH (default: .) the way the
    Actions runner does, to reproduce a CI failure locally; with --torch, once per torch
    version, and merge the reports.

    \b
        torchvet docker                              # the published image, as in CI
        torchvet docker --build                      # from this torchvet's Dockerfile
        torchvet docker --torch 2.3.1,2.4.1 -j 4 --junit matrix.xml
        torchvet docker --gpus all --device cuda --build \\
            --torch-index-url https://download.pytorch.org/whl/cu121

    Exit codes: 0 all good, 1 a check (or a cell's setup) failed, 2 Docker or usage
    problem, 130 interrupted.
    """
    options = DockerOptions(
        path=path, subpath=subpath, image=image, build=build, context=context,
        python_version=python_version, image_torch=image_torch,
        torch=[], torch_index_url=torch_index_url, install=install,
        install_command=install_command, checks=checks, models=models, exclude=exclude,
        fail_on=fail_on, seed=seed, timeout=timeout, jobs=jobs, shard=shard,
        changed_since=changed_since, device=device,
        gpus=gpus, network=network, in_place=in_place, junit=junit, json_path=json_path,
        summary=summary, raw_log=raw_log)
    options.torch = parse_torch_versions(torch)
    raise SystemExit(run(options))
