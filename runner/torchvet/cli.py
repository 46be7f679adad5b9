"""The ``torchvet`` command line: click parsing and dispatch; each command's body is a
module of :mod:`torchvet.commands`, the run itself :mod:`torchvet.session`.

``main(argv) -> int`` never raises: a :class:`~torchvet.errors.UsageError` raised anywhere
below exits 2 with its message (which names the fix); an interrupt exits 130 after
writing the reports; an internal error exits 3 with the traceback. Neither ``--help``
nor ``list`` imports torch.
"""

from __future__ import annotations

import io
import os
import sys
import traceback
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import click

from . import __version__
from .action.docker.plan import (
    BUILD_TAG,
    DockerOptions,
    default_image,
    parse_torch_versions,
    split_list,
)
from .commands.checks import list_checks
from .commands.docker import docker
from .commands.init import init
from .commands.list import list_units
from .commands.merge import merge
from .commands.run import run
from .commands.snapshot import snapshot
from .errors import ExitCode, UsageError
from .github.console import echo_err, in_actions_log
from .github.workflow import command
from .options import Device, FailOn, RunOptions
from .project.discovery import split_patterns

# --------------------------------------------------------------------------- commands

PATH_ARG = click.argument("path", default=".", type=click.Path(file_okay=True, dir_okay=True))
F = TypeVar("F", bound=Callable[..., Any])


def device_option(help: str) -> Callable[[F], F]:
    """``--device``: one of :class:`Device`, cpu by default."""
    return click.option("--device", type=click.Choice(Device.values()),
                        default=Device.CPU.value, show_default=True, help=help)


def report_option(flag: str, name: str, help: str) -> Callable[[F], F]:
    """A report file option (``--junit``, ``--json``): a path, unset by default."""
    return click.option(flag, name, type=click.Path(dir_okay=False), default=None, help=help)


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
    raise SystemExit(list_units(path, models=models, exclude=exclude,
                                changed_since=changed_since, installed=installed,
                                as_json=as_json))


@cli.command("checks")
@click.option("--json", "as_json", is_flag=True, help="Print the catalogue as JSON.")
def checks_command(as_json: bool) -> None:
    """List every check: id, whether it runs by default, what it catches."""
    raise SystemExit(list_checks(as_json=as_json))


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
@click.option("--fail-on", type=click.Choice(FailOn.values()), default=None,
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
@device_option("Where the checks run; auto picks cuda when available.")
@report_option("--junit", "junit", "Write a JUnit XML report here.")
@report_option("--json", "json_path",
               "Write the full JSON report here (input of `torchvet merge`).")
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
    options = RunOptions(
        checks=tuple(split_patterns(checks)),
        models=models,
        exclude=exclude,
        shard=shard,
        changed_since=changed_since,
        seed=seed,
        fail_on=FailOn(fail_on) if fail_on else None,
        timeout=timeout,
        jobs=jobs or 0,
        device=Device(device),
        junit=junit,
        json_path=json_path,
        capture=not no_capture,
        github=github if github is not None else os.environ.get("GITHUB_ACTIONS") == "true",
        full_trace=full_trace,
    )
    raise SystemExit(run(path, options, installed=installed, durations=durations,
                         baseline=baseline))


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
@device_option("Where the models run (values are filed per device).")
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
    options = RunOptions(models=models, exclude=exclude, seed=seed, timeout=timeout,
                         jobs=jobs or 0, device=Device(device), capture=not no_capture)
    raise SystemExit(snapshot(path, options, installed=installed, update=update,
                              output=output))


@cli.command("merge")
@click.argument("reports", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False))
@report_option("--junit", "junit", "Write the merged JUnit XML report here.")
@report_option("--json", "json_path", "Write the merged JSON report here.")
@click.option("--fail-on", type=click.Choice(FailOn.values()),
              default=FailOn.FAILURE.value, show_default=True, help="What makes the exit code 1.")
def merge_command(reports: tuple[str, ...], junit: str | None, json_path: str | None,
                  fail_on: str) -> None:
    """Combine the JSON reports of shards (or matrix cells) into one report."""
    raise SystemExit(merge(reports, junit=junit, json_path=json_path, fail_on=FailOn(fail_on)))


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
    raise SystemExit(init(path, write=write, check=check))


@cli.command("docker", context_settings={"max_content_width": 100})
@click.argument("path", default=".", type=click.Path(file_okay=False, dir_okay=True))
@click.option("--checks", multiple=True, metavar="PATTERN",
              help="Checks to run (input checks): areas, ids or globs; -prefix excludes. "
                   "Repeatable or comma-separated.")
@click.option("-k", "--models", multiple=True, metavar="GLOB",
              help="Only factories whose name matches (input models).")
@click.option("--exclude", multiple=True, metavar="GLOB",
              help="Leave out factories whose name matches (input exclude).")
@click.option("--seed", type=click.IntRange(min=0), default=None, help="Input seed.")
@click.option("--fail-on", type=click.Choice(FailOn.values()), default=None,
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
@device_option("Input device; cuda needs --gpus and a CUDA torch.")
@report_option("--junit", "junit",
               "Write the merged JUnit XML here (a testsuite per unit and torch).")
@report_option("--json", "json_path", "Write the merged JSON report here.")
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
    run_options = RunOptions(
        checks=tuple(split_list(checks)), models=tuple(split_list(models)),
        exclude=tuple(split_list(exclude)), shard=shard, changed_since=changed_since,
        seed=seed, fail_on=FailOn(fail_on) if fail_on else None, timeout=timeout,
        jobs=jobs or 0, device=Device(device), junit=junit, json_path=json_path)
    options = DockerOptions(
        path=path, run=run_options, subpath=subpath, image=image, build=build,
        context=context, python_version=python_version, image_torch=image_torch,
        torch=parse_torch_versions(torch), torch_index_url=torch_index_url, install=install,
        install_command=install_command, gpus=gpus, network=network, in_place=in_place,
        summary=summary, raw_log=raw_log)
    raise SystemExit(docker(options))

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
