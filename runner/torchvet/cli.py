"""The ``torchvet`` command line: click parsing and dispatch; the run itself is
:mod:`torchvet.session`.

``main(argv) -> int`` never raises: a :class:`~torchvet.errors.UsageError` raised anywhere
below exits 2 with its message (which names the fix); an interrupt exits 130 after
writing the reports; an internal error exits 3 with the traceback. Neither ``--help``
nor ``list`` imports torch.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import sys
import traceback
from collections.abc import Iterator, Sequence
from pathlib import Path

import click

from . import __version__, baselines
from .action.docker.command import docker_command
from .action.workflow import command, neutralize, stop_commands
from .checks.catalogue import CATALOGUE
from .errors import ExitCode, UsageError
from .project.discovery import split_patterns
from .project.stanza import plan as init_plan
from .project.stanza import report as init_report
from .reporters import json_report
from .reporters.terminal import TerminalReporter
from .results import exit_code_for, merge_runs
from .session import (
    RunOptions,
    cpu_count,
    execute,
    in_actions_log,
    select_units,
    shield_environment,
    stderr_into_stdout,
    validate_checks,
    validate_config_checks,
    write_reports,
)

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

BASELINE_OPT = click.option(
    "--baseline", metavar="REF", default=None,
    help="What the regression checks compare with: 'snapshot' (default: the files under "
         ".torchvet/snapshots), a directory of snapshot files, or a git ref whose "
         "snapshots are taken on the fly from a checkout of it, e.g. the pull request's "
         "base SHA or origin/main.",
)

CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


@contextlib.contextmanager
def commands_off() -> Iterator[None]:
    """In a GitHub Actions log, what the block prints (names, messages, paths of the
    project) sits inside a stop-commands block: it cannot issue workflow commands."""
    if not in_actions_log():
        yield
        return
    sys.stdout.flush()
    resume = stop_commands(sys.stdout)
    try:
        yield
    finally:
        sys.stdout.flush()
        sys.stdout.write(resume)
        sys.stdout.flush()


def echo_err(text: str) -> None:
    """A line on stderr; in an Actions log with every ``::`` and ``##[`` neutralised
    (stderr is read for commands too, and a block on stdout does not order with it)."""
    click.echo(neutralize(text) if in_actions_log() else text, err=True)


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
    sel = select_units(path, models, exclude, installed, changed_since=changed_since)
    changes = sel.changes
    if as_json:
        rows = [f.to_dict() | ({"changed": changes.why(f)} if changes else {})
                for f in sel.factories]
        with commands_off():
            click.echo(json.dumps(rows, indent=2))
        return
    with commands_off():
        if changes is not None:
            click.echo(changes.summary(len(sel.factories), len(sel.all_factories)))
        width = max((len(f.name) for f in sel.factories), default=0)
        for f in sel.factories:
            where = f" ({_short(f.file, sel.project.root)}:{f.line})" if f.file else ""
            click.echo(f"{f.kind:<8} {f.name:<{width}}  {f.value}{where}")
            if changes is not None and not changes.everything:
                click.echo(f"{'':<8} {'':<{width}}  because {changes.why(f)}")
    for note in sel.notes:
        echo_err(f"note: {note}")


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
@click.option("--full-trace", is_flag=True,
              help="Keep torchvet's own frames in the tracebacks of verdicts (hidden by "
                   "default, so a traceback starts at your code).")
@BASELINE_OPT
@INSTALLED_OPT
def run_command(path: str, checks: tuple[str, ...], models: tuple[str, ...],
                exclude: tuple[str, ...], seed: int | None, fail_on: str | None,
                timeout: float | None, jobs: int | None, shard: str | None, device: str,
                junit: str | None, json_path: str | None, no_capture: bool,
                github: bool | None, installed: bool | None, durations: tuple[str, ...] = (),
                changed_since: str | None = None, full_trace: bool = False,
                baseline: str | None = None) -> None:
    """Run the checks on every factory found at PATH (default: .)."""
    shield_environment()  # before git or anything else starts
    sel = select_units(path, models, exclude, installed, shard, changed_since, durations)
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
        full_trace=full_trace,
    )
    validate_config_checks(config)
    options.jobs = min(options.jobs, max(1, len(sel.factories)))
    run = execute(sel, options, baselines=lambda: baselines.resolve(sel, baseline, options))
    if run.interrupted:
        raise SystemExit(ExitCode.INTERRUPTED)
    raise SystemExit(exit_code_for(run, options.fail_on))


@cli.command("snapshot")
@PATH_ARG
@MODELS_OPT
@EXCLUDE_OPT
@click.option("--update", is_flag=True,
              help="Accept the changes: rewrite the snapshots that differ (the file's diff "
                   "then shows the change to reviewers).")
@click.option("--output", type=click.Path(file_okay=False), default=None, metavar="DIR",
              help="Write the snapshots here instead of PATH/.torchvet/snapshots (a "
                   "baseline for `torchvet run --baseline DIR`).")
@click.option("--seed", type=int, default=None,
              help="Seed of the snapshot's values [default: [tool.torchvet] seed, else 0].")
@click.option("--timeout", type=click.FloatRange(min=0, min_open=True), default=None,
              metavar="SECONDS", help="Per-unit time limit [default: 300].")
@click.option("-j", "--jobs", type=click.IntRange(min=1), default=None,
              help="Units snapshotted at once [default: cores].")
@click.option("--device", type=click.Choice(["cpu", "cuda", "auto"]), default="cpu",
              show_default=True, help="Where the models run (values are filed per device).")
@click.option("-s", "--no-capture", is_flag=True,
              help="Let the output of user code through.")
@INSTALLED_OPT
def snapshot_command(path: str, models: tuple[str, ...], exclude: tuple[str, ...],
                     update: bool, output: str | None, seed: int | None,
                     timeout: float | None, jobs: int | None, device: str, no_capture: bool,
                     installed: bool | None) -> None:
    """Write each unit's snapshot (signature, cost, values) under PATH/.torchvet/snapshots,
    what the regression checks compare with.

    A missing file is created and a torch version or device the file lacks is added; a
    snapshot that differs is reported and left alone (exit 1) unless --update accepts it.
    Commit the files: their diff shows reviewers what a change does to the model.
    """
    shield_environment()  # the units are the project's code: guarded like a run's
    sel = select_units(path, models, exclude, installed)
    config = sel.config
    options = RunOptions(
        seed=seed if seed is not None else (config.seed or 0),
        timeout=timeout,
        jobs=min(jobs or config.jobs or cpu_count(), max(1, len(sel.factories))),
        device=device,
        capture=not no_capture,
    )
    with commands_off(), stderr_into_stdout(in_actions_log()):
        code = baselines.snapshot_units(sel, options, update=update, output=output)
    raise SystemExit(code)


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
    merged = merge_runs([json_report.read(path) for path in reports])
    with commands_off():
        terminal = TerminalReporter()
        terminal.header(f"torchvet merge · {len(reports)} report(s) · "
                        f"{len(merged.reports)} unit(s)")
        terminal.finish(merged, fail_on)
        write_reports(merged, terminal, fail_on, junit_path=junit, json_path=json_path)
    raise SystemExit(exit_code_for(merged, fail_on))


@cli.command("init")
@PATH_ARG
@click.option("--write", is_flag=True,
              help="Apply the proposal: append the stanza to pyproject.toml (only when the "
                   "result re-parses to the old data plus the new entries) and write the "
                   "factories skeleton, if any. Runs --check first unless --no-check.")
@click.option("--check/--no-check", default=None,
              help="Build each proposed entry and run its first forward in an isolated "
                   "worker (short timeout); those that raise move to the skeleton's TODOs "
                   "with the error. Default: on with --write, off without.")
def init_command(path: str, write: bool, check: bool | None) -> None:
    """Find the models and datasets of the project at PATH (default: .) by reading its
    sources (nothing is imported) and propose the entry-point stanza; shows the diff,
    writes it only with --write.

    A class is proposed when it is a model the project uses: exported, trained or built
    in a script, tested, shown in the README, or a torch nn.Transformer/nn.LSTM; a class
    built only inside other models is a part and left out. Each entry says why in a
    comment. Names are snake case with acronyms kept (ViT -> vit, T2TViT -> t2t_vit),
    qualified by module on a clash. Classes that need constructor arguments get a
    factory in torchvet_factories.py: built as the project's README, tests or scripts
    build them from literals, else a TODO."""
    init_report(init_plan(path, check=write if check is None else check), write)


cli.add_command(docker_command)  # torchvet docker (action/docker; imports docker lazily)


# --------------------------------------------------------------------------- entry


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit code instead of exiting."""
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        cli.main(args=args, prog_name="torchvet", standalone_mode=False)
    except SystemExit as exc:
        return int(exc.code) if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except (click.exceptions.Abort, KeyboardInterrupt):
        click.echo("interrupted", err=True)
        return ExitCode.INTERRUPTED
    except click.ClickException as exc:
        shown = io.StringIO()
        exc.show(file=shown)
        echo_err(shown.getvalue().rstrip("\n"))
        return ExitCode.USAGE
    except UsageError as exc:
        echo_err(f"torchvet: error: {exc}")
        if in_actions_log():
            click.echo(command("error", str(exc), title="torchvet"))
        return ExitCode.USAGE
    except Exception:
        echo_err("torchvet: internal error (please report it with the traceback below):\n"
                 + traceback.format_exc())
        return ExitCode.INTERNAL
    return ExitCode.OK


def console_main() -> None:
    sys.exit(main())
