"""One run, start to end: select the units, build their jobs, execute them, write the
reports. A command (:mod:`torchvet.commands`) gets a
:class:`~torchvet.options.RunOptions`, calls :func:`select_units`, :func:`settle` and
:func:`execute`; ``torchvet docker`` reuses the report writing and the SIGTERM handling.

While units run, the run process guards itself against them (docs/security.md): the
tokens and file-command paths are out of its environment before the fork server starts
(and it is not dumpable while it holds them), it is the subreaper of everything the units
start and kills what they leave (:mod:`.engine.reaper`), signals are judged by their
sender (:mod:`.engine.signals`), and in GitHub Actions everything printed while units
run, stderr included, sits inside a stop-commands block that closes only once every
process of the units is dead.

Problems the user must fix raise :class:`torchvet.errors.UsageError`; this module never
imports torch (the workers do).
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any, TextIO

from . import __version__
from .checks.catalogue import AREAS, RENAMED, unknown_patterns
from .engine import prctl, reaper
from .engine.executor import Executor, warm_up
from .engine.jobs import Job
from .engine.memory import MemoryReading, describe, read_memory, usable
from .engine.signals import SignalJudge, trusted_canceller
from .errors import UsageError
from .github import reporter as github
from .github import workflow
from .github.console import in_actions_log
from .options import FailOn, RunOptions
from .project.changes import ChangedUnits, select_changed
from .project.config import Config, load_config
from .project.discovery import (
    SNIPPET,
    Factory,
    Project,
    discover,
    filter_factories,
    shard,
    split_patterns,
)
from .project.paths import find_report_root
from .project.sharding import recorded_durations, recorded_peaks, select_shard
from .project.torch_pin import check_torch
from .regression import changes as model_changes
from .regression.jobs import Key, record_changes, with_baselines
from .regression.store import Baseline
from .reporters import json_report, junit
from .reporters.terminal import TerminalReporter
from .results import RunReport, UnitReport, clean_run, clean_unit


def torch_version() -> str:
    """The installed torch, read from its metadata (importing it costs seconds)."""
    try:
        return version("torch")
    except PackageNotFoundError:
        return "not installed"


def cpu_count() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


# --------------------------------------------------------------------------- selection


@dataclass
class Selection:
    """The outcome of discovery + filters: what will run and with which config."""

    project: Project
    config: Config
    factories: list[Factory]
    all_factories: list[Factory]
    notes: list[str] = field(default_factory=list)
    changes: ChangedUnits | None = None  # under --changed-since: why each unit runs
    peaks: dict[tuple[str, str], int] = field(default_factory=dict)  # recorded, --durations


def select_units(
    path: str,
    models: Sequence[str],
    exclude: Sequence[str],
    installed: bool | None,
    shard_spec: str | None = None,
    changed_since: str | None = None,
    durations: Sequence[str] = (),
) -> Selection:
    """Discover the factories at ``path`` and apply every filter of the command line."""
    project, found = discover(path, include_installed=installed)
    config = load_config(project.pyproject, project.data)
    if not found:
        where = project.pyproject or Path(project.root) / "pyproject.toml"
        raise UsageError(
            f"no torchvet factories found in {where} or in the installed distributions.\n"
            f"Declare zero-argument factories as entry points in pyproject.toml:\n\n{SNIPPET}"
        )
    include = split_patterns(models)
    skip = split_patterns(exclude)
    selected = filter_factories(found, include, skip)
    if not selected:
        names = ", ".join(f.name for f in found)
        raise UsageError(f"no factory matches --models {include or '*'} --exclude {skip}; "
                         f"found: {names}")
    changes = None
    if changed_since:
        feeds = {name: str(table["dataset"]) for name, table in config.models.items()
                 if table.get("dataset")}
        changes = select_changed(project, found, changed_since, feeds)
        selected = changes.selected(selected)
    recorded = recorded_units(durations)
    if shard_spec:
        index, total = parse_shard(shard_spec)
        selected = (select_shard(selected, index, total, recorded_durations(recorded))
                    if durations else shard(selected, index, total))
    notes = [*check_torch(project.data)] + [
        f"{config.source}: [tool.torchvet.{name}] matches no discovered factory"
        for name in config.unknown_units(
            {f.name for f in found if f.kind == "model"},
            {f.name for f in found if f.kind == "dataset"},
        )
    ]
    return Selection(project, config, selected, found, notes, changes,
                     recorded_peaks(recorded))


class DurationsError(UsageError):
    """A --durations file that is not a torchvet JSON report."""


def recorded_units(paths: Sequence[str | Path]) -> list[UnitReport]:
    """The units of the ``torchvet run --json`` reports at ``paths`` (``--durations``),
    in order: what sharding and the scheduler learn from the last runs."""
    units: list[UnitReport] = []
    for path in paths:
        try:
            run = json_report.read(path)
        except json_report.ReportError as exc:
            raise DurationsError(f"--durations {exc}") from None
        units.extend(run.reports)
    return units


def parse_shard(value: str) -> tuple[int, int]:
    try:
        index_text, total_text = value.split("/")
        index, total = int(index_text), int(total_text)
    except ValueError:
        raise UsageError(f"--shard {value!r}: expected i/n, e.g. --shard 1/4") from None
    if total < 1 or not 1 <= index <= total:
        raise UsageError(f"--shard {value}: expected 1 <= i <= n")
    return index, total


def validate_checks(patterns: Sequence[str], where: str = "--checks") -> tuple[str, ...]:
    unknown = unknown_patterns(patterns)
    moved = [f"{p} is now {RENAMED[p.lstrip('-!')]}" for p in unknown if p.lstrip("-!") in RENAMED]
    if moved:
        raise UsageError(f"{where}: {'; '.join(moved)} (the learning area absorbed it): "
                         "use the new id")
    if unknown:
        raise UsageError(
            f"{where} {', '.join(unknown)} matches no check; areas: {', '.join(AREAS)}; "
            "run `torchvet checks` for the ids"
        )
    return tuple(patterns)


def validate_config_checks(config: Config) -> None:
    """Every ``checks`` list of ``[tool.torchvet]`` names known checks."""
    tables = [config.defaults, *config.models.values(), *config.datasets.values()]
    for table in tables:
        validate_checks(table.get("checks", ()), f"{config.source}: [tool.torchvet] checks:")


# --------------------------------------------------------------------------- execution


def settle(options: RunOptions, sel: Selection) -> RunOptions:
    """``options`` with what they leave to the project decided: the seed, fail-on and
    jobs of ``[tool.torchvet]``, else 0, ``failure`` and the cores; never more jobs than
    units."""
    config = sel.config
    jobs = options.jobs or config.jobs or cpu_count()
    return replace(
        options,
        seed=options.seed if options.seed is not None else (config.seed or 0),
        fail_on=options.fail_on or FailOn(config.fail_on or FailOn.FAILURE),
        jobs=min(jobs, max(1, len(sel.factories))),
    )


def project_dirs(sel: Selection) -> tuple[str, ...]:
    """Where the project's own code lives: the root, plus the top package of every
    factory that is not on a declared sys.path (culprit lines are looked for there)."""
    dirs = [str(sel.project.root)]
    for f in sel.factories:
        if f.file and not f.sys_path:
            top = Path(f.file).parent
            for _ in f.module.split(".")[1:]:
                top = top.parent
            if f.file.endswith("__init__.py"):
                top = top.parent
            dirs.append(str(top / f.module.split(".")[0]))
    return tuple(dict.fromkeys(dirs))


def build_jobs(sel: Selection, options: RunOptions) -> list[Job]:
    report_root = str(find_report_root(sel.project.root))
    dirs = project_dirs(sel)
    threads = max(1, cpu_count() // max(1, options.jobs))
    return [
        Job(
            factory=factory,
            config=sel.config.for_unit(factory.kind, factory.name, {"timeout": options.timeout}),
            seed=options.run_seed,
            device=str(options.device),
            checks=options.checks,
            threads=threads,
            project_dirs=dirs,
            report_root=report_root,
            cwd=str(sel.project.root),
            full_trace=options.full_trace,
        )
        for factory in sel.factories
    ]


_withheld: dict[str, dict[str, str]] = {}


def shield_environment() -> dict[str, str]:
    """Take the tokens and file-command paths out of this process's environment (the
    fork server and every worker start from what is left) and make the process not
    dumpable while it held any, so another process of the same user cannot read them
    from ``/proc/<pid>/environ``. Idempotent; returns the environment as it was."""
    if "saved" not in _withheld:
        saved = workflow.withhold_from_user_code()
        if any(workflow.is_withheld(name) for name in saved):
            prctl.set_dumpable(False)
        _withheld["saved"] = saved
    return _withheld["saved"]


@contextlib.contextmanager
def stderr_into_stdout(active: bool) -> Iterator[None]:
    """Send fd 2 to fd 1 while the block runs (workers and the fork server inherit it),
    so the stop-commands block on stdout covers all the units print, in order."""
    if not active:
        yield
        return
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(2)
    os.dup2(1, 2)
    try:
        yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)


def execute(sel: Selection, options: RunOptions, stream: TextIO | None = None, *,
            baselines: Callable[[], dict[Key, Baseline]] | None = None) -> RunReport:
    """Run every selected unit and write the reports; returns the run. ``baselines``
    (``--baseline REF``: the base's units run in workers for their snapshots) is called
    under the same guards as the units: inside the stop-commands block, as subreaper."""
    saved_env = shield_environment()
    github_env = saved_env if options.github else None
    reaper.become_subreaper()
    memory = read_memory()  # before the fork server takes its share
    out = stream or sys.stdout
    guarded = options.github or in_actions_log()
    with stderr_into_stdout(guarded and out is sys.stdout):  # the fork server inherits it
        resume = workflow.stop_commands(out) if guarded else None
        try:
            if baselines is not None:
                options.baselines = baselines()
            jobs = with_baselines(build_jobs(sel, options), options.baselines)
            if jobs:  # an empty selection (--changed-since, --shard) needs no torch
                warm_up(jobs)
            run = run_units(sel, options, jobs, out, memory)
        finally:  # a usage error (an unknown base ref) must not leave the log muted
            if resume is not None:
                out.write(resume)
                out.flush()
    if options.github:
        github.publish(run, fail_on=options.run_fail_on, junit_path=options.junit, stream=out,
                       env=github_env)
    return run


def run_units(sel: Selection, options: RunOptions, jobs: list[Job], out: TextIO,
              memory: MemoryReading | None = None) -> RunReport:
    """The units, the terminal report and the report files; when it returns, no process
    of the units is left. ``memory``: what the units may share (None: unknown)."""
    terminal = TerminalReporter(stream=out, total=len(jobs))
    n_models = sum(1 for f in sel.factories if f.kind == "model")
    terminal.header(
        f"torchvet {__version__} · torch {torch_version()} · {n_models} model(s), "
        f"{len(sel.factories) - n_models} dataset(s) · -j {options.jobs} · "
        f"seed {options.run_seed}"
        f"{memory_summary(memory)}"
    )
    for note in sel.notes:
        terminal.write(f"note: {note}")
    started = time.monotonic()

    def unit_done(report: UnitReport) -> None:
        terminal.unit_done(clean_unit(report))

    executor = Executor(jobs, parallel=options.jobs, on_done=unit_done,
                        capture=options.capture,
                        memory=usable(memory) if memory is not None else None,
                        peaks=sel.peaks)
    judge = SignalJudge(executor.reaper, trusted=trusted_canceller(), stream=out)
    with terminate_as_interrupt(), judge:
        reports = executor.run()
        judge.armed = False
        executor.reaper.sweep(final=True)
    record_changes(reports, jobs, executor.snapshots)
    run = clean_run(RunReport(
        reports=reports,
        seed=options.run_seed,
        torch_version=torch_version(),
        torchvet_version=__version__,
        duration=time.monotonic() - started,
        interrupted=executor.interrupted or judge.honoured is not None,
    ))
    terminal.finish(run, options.run_fail_on)
    for line in model_changes.text_lines(run.reports):
        terminal.write(line)
    write_reports(run, terminal, options.run_fail_on, junit_path=options.junit,
                  json_path=options.json_path)
    return run


def memory_summary(memory: MemoryReading | None) -> str:
    """The header's memory figure: what the units may share (``-j`` is an upper bound)."""
    if memory is None:
        return ""
    return f" · {describe(usable(memory))} of memory usable"


@contextlib.contextmanager
def terminate_as_interrupt() -> Iterator[None]:
    """SIGTERM (a CI timeout, ``docker stop``, kill) interrupts like Ctrl-C: the reports
    are written with what finished."""

    def handler(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    try:
        previous = signal.signal(signal.SIGTERM, handler)
    except ValueError:  # not the main thread
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def write_reports(run: RunReport, terminal: TerminalReporter, fail_on: str, *,
                  junit_path: str | None = None, json_path: str | None = None) -> None:
    """The JUnit and JSON files asked for, each announced on the terminal."""
    if junit_path:
        junit.write(run, junit_path, fail_on)
        terminal.write(f"JUnit report: {junit_path}")
    if json_path:
        json_report.write(run, json_path)
        terminal.write(f"JSON report: {json_path}")
