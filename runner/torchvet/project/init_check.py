"""``torchvet init --check``: zero-argument for real. Each proposed entry is built, and
its first forward run, in an isolated worker of the engine (the check ``forward.runs``
for a model, ``data.length`` for a dataset) under a short timeout; an entry whose
factory raises, or whose forward raises or returns no tensor, is reported with the
one-line error, so ``init`` can move it to the TODO skeleton. One that outlives the
short timeout is kept and named unchecked: slow is not broken.

Entries that live in a skeleton not written yet are checked from a copy of it in a
scratch directory, imported as a module of its own. Inputs the model's checks would
skip for (none could be inferred) are not an error: ``torchvet run`` says how to
declare them. An import error naming a module that is not the project's is a missing
dependency, named once, not blamed on the entries. This module never imports torch;
the workers do.
"""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ..engine.executor import Executor, warm_up
from ..engine.jobs import Job
from ..results import Status, UnitReport
from .config import load_config
from .discovery import Factory, Project
from .scaffold import Candidate, skeleton_module

CHECK_TIMEOUT = 60.0  # seconds per entry: building a model and one forward
FIRST_CHECK = {"model": "forward.runs", "dataset": "data.length"}
PROBLEMS = (Status.ERROR, Status.FAILED)
MISSING = "missing dependency: "  # prefix of an error that is the environment's, not the entry's


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


_MISSING = re.compile(r"ModuleNotFoundError: No module named '([\w.]+)'")


def missing_dependency(error: str, project: Project) -> str:
    """The module an import error names when it is not the project's own (a dependency
    that is not installed: no reason to move the entry), else ''."""
    found = _MISSING.search(error)
    if not found:
        return ""
    top = found.group(1).split(".")[0]
    if top.startswith("torchvet_init_probe"):
        return ""
    own = any(Path(base, top).is_dir() or Path(base, f"{top}.py").is_file()
              for base in project.sys_path)
    return "" if own else top


def problem(report: UnitReport) -> str:
    """The one-line reason an entry cannot stay, or '' when it built and ran."""
    for result in report.results:
        if result.status in PROBLEMS:
            return result.message.splitlines()[0] if result.message else result.status.value
    return ""


@dataclass
class CheckOutcome:
    """What ``--check`` found: ``problems`` ``{(kind, name): error}`` (a missing
    dependency's error starts with :data:`MISSING`), and the entries that built but
    whose inputs could not be guessed (kept: ``torchvet run`` says what to declare)."""

    problems: dict[tuple[str, str], str] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)
    slow: list[str] = field(default_factory=list)  # out of time: kept, not judged


def check_candidates(project: Project, candidates: Sequence[Candidate],
                     skeletons: Mapping[str, str], timeout: float = CHECK_TIMEOUT,
                     jobs: int | None = None) -> CheckOutcome:
    """``{(kind, name): error}`` for the entries of ``candidates`` that fail to build or
    to run their first forward. ``skeletons`` maps a package to the text of its skeleton
    module when it is not written yet (``init`` without ``--write``, or before writing).
    An entry that cannot be imported for a dependency the environment lacks is not the
    entry's fault: its error starts with ``MISSING`` and names the module."""
    todo = [c for c in candidates if not c.todo and not c.error]
    if not todo:
        return CheckOutcome()
    config = load_config(project.pyproject, project.data)
    with tempfile.TemporaryDirectory(prefix="torchvet-init-") as scratch:
        probes: dict[str, str] = {}  # skeleton module -> probe module
        for index, (package, text) in enumerate(sorted(skeletons.items())):
            probe = f"torchvet_init_probe_{index}"
            Path(scratch, f"{probe}.py").write_text(text, encoding="utf-8")
            probes[skeleton_module(package)] = probe
        job_list = []
        for c in todo:
            module, _, attr = c.value.partition(":")
            value = f"{probes[module]}:{attr}" if module in probes else c.value
            factory = Factory(c.name, c.kind, project.dist_name, value,
                              sys_path=(scratch, *project.sys_path))
            job_list.append(Job(
                factory=factory,
                config=config.for_unit(c.kind, c.name, {"timeout": timeout}),
                checks=(FIRST_CHECK[c.kind],),
                project_dirs=(str(project.root),),
                report_root=str(project.root),
                cwd=str(project.root),
            ))
        parallel = jobs or max(1, min(len(job_list), _cores()))
        warm_up(job_list)
        reports = Executor(job_list, parallel=parallel).run()
    out = CheckOutcome()
    for c, report in zip(todo, reports, strict=True):
        reason = problem(report)
        missing = missing_dependency(reason, project)
        if missing:
            out.problems[(c.kind, c.name)] = f"{MISSING}{missing}"
        elif reason.startswith("timed out"):
            out.slow.append(c.name)  # slow is not broken: `torchvet run` has more time
        elif reason:
            out.problems[(c.kind, c.name)] = reason
        elif any(r.status is Status.SKIPPED for r in report.results):
            out.skipped.append(c.name)
    return out
