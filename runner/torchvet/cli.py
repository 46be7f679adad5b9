"""The ``torchvet`` command line: a thin pipeline over discovery, execution and reports.

``main(argv) -> int`` never raises: usage, configuration and discovery problems exit 2
with a message that names the fix; an interrupt exits 130 after writing the reports;
an internal error exits 3 with the traceback. Neither ``--help`` nor ``list`` imports
torch.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
import traceback
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

import click

from . import __version__
from .action.docker.command import docker_command
from .checks.catalogue import AREAS, CATALOGUE, unknown_patterns
from .project.config import Config, ConfigError, load_config
from .project.discovery import (
    SNIPPET,
    DiscoveryError,
    Factory,
    Project,
    discover,
    filter_factories,
    shard,
    split_patterns,
)
from .results import RunReport, exit_code_for

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERNAL, EXIT_INTERRUPTED = 0, 1, 2, 3, 130


class Fatal(Exception):
    """A problem the user must fix before anything can run (exit code 2)."""


def fatal(message: str) -> NoReturn:
    raise Fatal(message)


def torch_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("torch")
    except PackageNotFoundError:
        return "not installed"


def cpu_count() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


# --------------------------------------------------------------------------- pipeline


@dataclass
class Selection:
    """The outcome of discovery + filters: what will run and with which config."""

    project: Project
    config: Config
    factories: list[Factory]
    all_factories: list[Factory]
    notes: list[str] = field(default_factory=list)
    changes: Any = None  # changes.Selection under --changed-since: why each unit runs


def select_factories(
    path: str,
    models: Sequence[str],
    exclude: Sequence[str],
    installed: bool | None,
    shard_spec: str | None = None,
    changed_since: str | None = None,
    durations: Sequence[str] = (),
) -> Selection:
    try:
        project, found = discover(path, include_installed=installed)
    except DiscoveryError as exc:
        fatal(str(exc))
    try:
        config = load_config(project.pyproject, project.data)
    except ConfigError as exc:
        fatal(str(exc))
    if not found:
        where = project.pyproject or Path(project.root) / "pyproject.toml"
        fatal(
            f"no torchvet factories found in {where} or in the installed distributions.\n"
            f"Declare zero-argument factories as entry points in pyproject.toml:\n\n{SNIPPET}"
        )
    include = split_patterns(models)
    skip = split_patterns(exclude)
    selected = filter_factories(found, include, skip)
    if not selected:
        names = ", ".join(f.name for f in found)
        fatal(f"no factory matches --models {include or '*'} --exclude {skip}; found: {names}")
    changes = None
    if changed_since:
        selected, changes = _changed_units(project, config, found, selected, changed_since)
    if durations and not shard_spec:
        fatal("--durations balances --shard: give --shard I/N too")
    if shard_spec:
        index, total = parse_shard(shard_spec)
        selected = _shard(selected, index, total, durations)
    notes = [
        f"{config.source}: [tool.torchvet.{name}] matches no discovered factory"
        for name in config.unknown_units(
            {f.name for f in found if f.kind == "model"},
            {f.name for f in found if f.kind == "dataset"},
        )
    ]
    return Selection(project, config, selected, found, notes, changes)


def _changed_units(project: Project, config: Config, found: list[Factory],
                   selected: list[Factory], ref: str) -> tuple[list[Factory], Any]:
    """--changed-since: the selected units the changes since ``ref`` can affect."""
    from .project.changes import ChangesError, select_changed

    feeds = {name: str(table["dataset"]) for name, table in config.models.items()
             if table.get("dataset")}
    try:
        changes = select_changed(project, found, ref, feeds)
    except ChangesError as exc:
        fatal(str(exc))
    return changes.selected(selected), changes


def _shard(selected: list[Factory], index: int, total: int,
           durations: Sequence[str]) -> list[Factory]:
    """--shard, balanced by the unit durations of --durations reports when given."""
    if not durations:
        return shard(selected, index, total)
    from .project.sharding import DurationsError, load_durations, select_shard

    try:
        recorded = load_durations(durations)
    except DurationsError as exc:
        fatal(str(exc))
    return select_shard(selected, index, total, recorded)


def parse_shard(value: str) -> tuple[int, int]:
    try:
        index_text, total_text = value.split("/")
        index, total = int(index_text), int(total_text)
    except ValueError:
        fatal(f"--shard {value!r}: expected i/n, e.g. --shard 1/4")
    if total < 1 or not 1 <= index <= total:
        fatal(f"--shard {value}: expected 1 <= i <= n")
    return index, total


def validate_checks(patterns: Sequence[str]) -> tuple[str, ...]:
    unknown = unknown_patterns(patterns)
    if unknown:
        fatal(
            f"--checks {', '.join(unknown)} matches no check; areas: {', '.join(AREAS)}; "
            "run `torchvet checks` for the ids"
        )
    return tuple(patterns)


def build_jobs(sel: Selection, options: RunOptions) -> list[Any]:
    from .engine.jobs import Job
    from .project.paths import find_report_root

    report_root = str(find_report_root(sel.project.root))
    project_dirs = [str(sel.project.root)]
    for f in sel.factories:
        if f.file and not f.sys_path:
            top = Path(f.file).parent
            for _ in f.module.split(".")[1:]:
                top = top.parent
            if f.file.endswith("__init__.py"):
                top = top.parent
            project_dirs.append(str(top / f.module.split(".")[0]))
    jobs = []
    for factory in sel.factories:
        unit = sel.config.for_unit(factory.kind, factory.name, {"timeout": options.timeout})
        jobs.append(
            Job(
                factory=factory,
                config=unit,
                seed=options.seed,
                device=options.device,
                checks=options.checks,
                threads=max(1, cpu_count() // options.jobs),
                project_dirs=tuple(dict.fromkeys(project_dirs)),
                report_root=report_root,
                cwd=str(sel.project.root),
            )
        )
    return jobs


@dataclass
class RunOptions:
    seed: int = 0
    fail_on: str = "failure"
    timeout: float | None = None
    jobs: int = 1
    checks: tuple[str, ...] = ()
    device: str = "cpu"
    junit: str | None = None
    json_path: str | None = None
    capture: bool = True
    github: bool = False  # GitHub Actions: annotations, job summary, step outputs


def execute(sel: Selection, options: RunOptions, stream: Any = None) -> RunReport:
    from .engine.executor import Executor, warm_up
    from .reporters.terminal import TerminalReporter

    github_env = None
    if options.github:  # no worker inherits the tokens or the step's output/summary paths
        from .reporters.github import withhold_from_user_code

        github_env = withhold_from_user_code()
    jobs = build_jobs(sel, options)
    if jobs:  # an empty selection (--changed-since, --shard) needs no torch
        warm_up(jobs)
    out = stream or sys.stdout
    resume = _stop_commands(out) if options.github else None
    terminal = TerminalReporter(stream=out, total=len(jobs))
    n_models = sum(1 for f in sel.factories if f.kind == "model")
    terminal.header(
        f"torchvet {__version__} · torch {torch_version()} · {n_models} model(s), "
        f"{len(sel.factories) - n_models} dataset(s) · -j {options.jobs} · seed {options.seed}"
    )
    for note in sel.notes:
        terminal.write(f"note: {note}")
    started = time.monotonic()
    executor = Executor(jobs, parallel=options.jobs, on_done=terminal.unit_done,
                        capture=options.capture)
    previous = _terminate_as_interrupt()
    try:
        reports = executor.run()
    finally:
        signal.signal(signal.SIGTERM, previous)
    run = RunReport(
        reports=reports,
        seed=options.seed,
        torch_version=torch_version(),
        torchvet_version=__version__,
        duration=time.monotonic() - started,
        interrupted=executor.interrupted,
    )
    write_reports(run, options, terminal)
    if resume is not None:
        from .reporters import github

        out.write(resume)
        out.flush()
        github.publish(run, fail_on=options.fail_on, junit_path=options.junit, stream=out,
                       env=github_env)
    return run


def _stop_commands(out: Any) -> str:
    """Disable workflow commands while anything derived from user code is printed; the
    returned line re-enables them (https://docs.github.com/actions: stop-commands)."""
    import secrets

    token = secrets.token_hex(16)
    out.write(f"::stop-commands::{token}\n")
    out.flush()
    return f"::{token}::\n"


def _terminate_as_interrupt() -> Any:
    def handler(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    return signal.signal(signal.SIGTERM, handler)


def write_reports(run: RunReport, options: RunOptions, terminal: Any) -> None:
    from .reporters import json_report, junit

    terminal.finish(run, options.fail_on)
    if options.junit:
        junit.write(run, options.junit, options.fail_on)
        terminal.write(f"JUnit report: {options.junit}")
    if options.json_path:
        json_report.write(run, options.json_path)
        terminal.write(f"JSON report: {options.json_path}")


# --------------------------------------------------------------------------- commands

PATH_ARG = click.argument("path", default=".", type=click.Path(file_okay=True, dir_okay=True))
MODELS_OPT = click.option(
    "-k", "--models", multiple=True, metavar="GLOB",
    help="Only factories whose name matches (repeatable or comma-separated): -k 'resnet*'.",
)
EXCLUDE_OPT = click.option(
    "--exclude", multiple=True, metavar="GLOB",
    help="Leave out factories whose name matches (repeatable or comma-separated).",
)
CHANGED_OPT = click.option(
    "--changed-since", metavar="REF", default=None,
    help="Only units whose factory module, or a project module it imports, changed since "
         "the git REF (merge base...HEAD plus uncommitted changes); a change to pyproject "
         "or other configuration selects every unit. E.g. the pull request's base SHA.",
)
INSTALLED_OPT = click.option(
    "--installed/--no-installed", default=None,
    help="Also take entry points from installed distributions (default: only when the "
         "project at PATH declares none).",
)

CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


@click.group(context_settings=CONTEXT)
@click.version_option(__version__, "-V", "--version", prog_name="torchvet")
def cli() -> None:
    """Vet PyTorch models: forward, training, state, portability and data checks.

    Declare zero-argument factories in your pyproject.toml, then run the checks:

    \b
        [project.entry-points."torchvet.models"]
        classifier = "mypkg.models:make_classifier"

    \b
        torchvet list              # what would be checked
        torchvet run               # check everything, exit 1 on a failure
        torchvet run -k 'resnet*' --checks forward,training --junit out.xml

    Exit codes: 0 all good, 1 a check failed or errored, 2 usage/config problem or
    nothing to check, 3 internal error, 130 interrupted.
    """


@cli.command("list")
@PATH_ARG
@MODELS_OPT
@EXCLUDE_OPT
@CHANGED_OPT
@INSTALLED_OPT
@click.option("--json", "as_json", is_flag=True, help="Print the factories as JSON.")
def list_command(path: str, models: tuple[str, ...], exclude: tuple[str, ...],
                 changed_since: str | None, installed: bool | None, as_json: bool) -> None:
    """List the model and dataset factories found at PATH (default: .), without importing
    them; with --changed-since, the ones a change affects and why."""
    sel = select_factories(path, models, exclude, installed, changed_since=changed_since)
    changes = sel.changes
    if as_json:
        rows = [f.to_dict() | ({"changed": changes.why(f)} if changes else {})
                for f in sel.factories]
        click.echo(json.dumps(rows, indent=2))
        return
    if changes is not None:
        click.echo(changes.summary(len(sel.factories), len(sel.all_factories)))
    width = max((len(f.name) for f in sel.factories), default=0)
    for f in sel.factories:
        where = f" ({_short(f.file, sel.project.root)}:{f.line})" if f.file else ""
        click.echo(f"{f.kind:<8} {f.name:<{width}}  {f.value}{where}")
        if changes is not None and not changes.everything:
            click.echo(f"{'':<8} {'':<{width}}  because {changes.why(f)}")
    for note in sel.notes:
        click.echo(f"note: {note}", err=True)


def _short(file: str | None, root: Path) -> str:
    if not file:
        return ""
    prefix = str(root).rstrip(os.sep) + os.sep  # string ops: list prints 1000s of these
    if file.startswith(prefix):
        return file[len(prefix):].replace(os.sep, "/")
    return file


@cli.command("checks")
@click.option("--json", "as_json", is_flag=True, help="Print the catalogue as JSON.")
def checks_command(as_json: bool) -> None:
    """List every check: id, whether it runs by default, what it catches."""
    if as_json:
        click.echo(json.dumps(
            [{"id": m.id, "default": m.default, "units": list(m.units), "summary": m.summary}
             for m in CATALOGUE.values()], indent=2))
        return
    for meta in CATALOGUE.values():
        flag = "" if meta.default else "  (opt-in)"
        click.echo(f"{meta.id:<28} {meta.summary}{flag}")


@cli.command("run")
@PATH_ARG
@click.option("--checks", "checks", multiple=True, metavar="PATTERN",
              help="Checks to run: areas (forward), ids (training.update) or globs "
                   "(export.*); prefix with - to exclude (-data.workers). Default: every "
                   "default check. Repeatable or comma-separated.")
@MODELS_OPT
@EXCLUDE_OPT
@click.option("--seed", type=int, default=None,
              help="Seed for torch, random and numpy; a verdict reproduces with its seed "
                   "[default: [tool.torchvet] seed, else 0].")
@click.option("--fail-on", type=click.Choice(["failure", "warning", "never"]), default=None,
              help="What makes the exit code 1 [default: failure].")
@click.option("--timeout", type=click.FloatRange(min=0, min_open=True), default=None,
              metavar="SECONDS",
              help="Per-unit time limit; its whole process group is killed past it "
                   "[default: 300].")
@click.option("-j", "--jobs", type=click.IntRange(min=1), default=None,
              help="Units checked at once, each with cores/N torch threads [default: cores].")
@click.option("--shard", metavar="I/N", default=None,
              help="Run only the I-th of N deterministic slices of the units (CI matrix).")
@click.option("--durations", multiple=True, type=click.Path(dir_okay=False), metavar="FILE",
              help="Balance --shard by the unit durations in these `torchvet run --json` "
                   "reports (longest first onto the least-loaded shard; unknown units count "
                   "as the median) instead of by name.")
@CHANGED_OPT
@click.option("--device", type=click.Choice(["cpu", "cuda", "auto"]), default="cpu",
              show_default=True, help="Where the checks run; auto picks cuda when available.")
@click.option("--junit", type=click.Path(dir_okay=False), default=None,
              help="Write a JUnit XML report here.")
@click.option("--json", "json_path", type=click.Path(dir_okay=False), default=None,
              help="Write the full JSON report here (input of `torchvet merge`).")
@click.option("-s", "--no-capture", is_flag=True,
              help="Let the output of user code through instead of capturing it per unit.")
@click.option("--github/--no-github", default=None,
              help="Emit GitHub Actions annotations, job summary and step outputs "
                   "[default: when GITHUB_ACTIONS=true].")
@INSTALLED_OPT
def run_command(path: str, checks: tuple[str, ...], models: tuple[str, ...],
                exclude: tuple[str, ...], seed: int | None, fail_on: str | None,
                timeout: float | None, jobs: int | None, shard: str | None, device: str,
                junit: str | None, json_path: str | None, no_capture: bool,
                github: bool | None, installed: bool | None, durations: tuple[str, ...] = (),
                changed_since: str | None = None) -> None:
    """Run the checks on every factory found at PATH (default: .)."""
    sel = select_factories(path, models, exclude, installed, shard, changed_since, durations)
    if sel.changes is not None:  # nothing affected is a success: the run is empty
        sel.notes.insert(0, sel.changes.summary(len(sel.factories), len(sel.all_factories)))
    config = sel.config
    options = RunOptions(
        seed=seed if seed is not None else (config.seed or 0),
        fail_on=fail_on or config.fail_on or "failure",
        timeout=timeout,
        jobs=jobs or config.jobs or cpu_count(),
        checks=validate_checks(split_patterns(checks)),
        device=device,
        junit=junit,
        json_path=json_path,
        capture=not no_capture,
        github=github if github is not None else os.environ.get("GITHUB_ACTIONS") == "true",
    )
    for unit_checks in [config.defaults.get("checks", ())] + [
        t.get("checks", ()) for t in [*config.models.values(), *config.datasets.values()]
    ]:
        if unit_checks:
            try:
                validate_checks(unit_checks)
            except Fatal as exc:
                fatal(f"{config.source}: [tool.torchvet] checks: {exc}")
    options.jobs = min(options.jobs, max(1, len(sel.factories)))
    run = execute(sel, options)
    if run.interrupted:
        raise SystemExit(EXIT_INTERRUPTED)
    raise SystemExit(exit_code_for(run, options.fail_on))


@cli.command("merge")
@click.argument("reports", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False))
@click.option("--junit", type=click.Path(dir_okay=False), default=None,
              help="Write the merged JUnit XML report here.")
@click.option("--json", "json_path", type=click.Path(dir_okay=False), default=None,
              help="Write the merged JSON report here.")
@click.option("--fail-on", type=click.Choice(["failure", "warning", "never"]),
              default="failure", show_default=True, help="What makes the exit code 1.")
def merge_command(reports: tuple[str, ...], junit: str | None, json_path: str | None,
                  fail_on: str) -> None:
    """Combine the JSON reports of shards (or matrix cells) into one report."""
    from .reporters import json_report
    from .reporters.terminal import TerminalReporter
    from .results import merge_runs

    runs = []
    for path in reports:
        try:
            runs.append(json_report.read(path))
        except (OSError, ValueError) as exc:
            fatal(str(exc))
    merged = merge_runs(runs)
    terminal = TerminalReporter()
    terminal.header(f"torchvet merge · {len(reports)} report(s) · {len(merged.reports)} unit(s)")
    write_reports(merged, RunOptions(fail_on=fail_on, junit=junit, json_path=json_path),
                  terminal)
    raise SystemExit(exit_code_for(merged, fail_on))


cli.add_command(docker_command)  # torchvet docker (docker_run.py; imports docker lazily)


# --------------------------------------------------------------------------- entry


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit code instead of exiting."""
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        cli.main(args=args, prog_name="torchvet", standalone_mode=False)
    except SystemExit as exc:
        return int(exc.code) if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except click.exceptions.Abort:
        click.echo("interrupted", err=True)
        return EXIT_INTERRUPTED
    except click.ClickException as exc:
        exc.show()
        return EXIT_USAGE
    except Fatal as exc:
        click.echo(f"torchvet: error: {exc}", err=True)
        if os.environ.get("GITHUB_ACTIONS") == "true":
            from .reporters.github import command

            click.echo(command("error", str(exc), title="torchvet"))
        return EXIT_USAGE
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        return EXIT_INTERRUPTED
    except Exception:
        click.echo(
            "torchvet: internal error (please report it with the traceback below):\n"
            + traceback.format_exc(),
            err=True,
        )
        return EXIT_INTERNAL
    return EXIT_OK


def console_main() -> None:
    sys.exit(main())
