"""What ``torchvet init`` proposes and the one edit it makes: the entry-point stanza
appended to pyproject.toml (the rest of the file untouched, byte for byte), accepted only
when re-parsing the result gives the old data plus exactly the new entries — otherwise
torchvet prints the stanza and says how to add it by hand. A factories skeleton is
written for classes that need constructor arguments, never over an existing file."""

from __future__ import annotations

import copy
import difflib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ExitCode, UsageError
from .discovery import DATASET_GROUP, MODEL_GROUP, load_project, project_entry_points
from .init_check import CHECK_TIMEOUT, MISSING, check_candidates
from .scaffold import (
    SKELETON_MODULE,
    Candidate,
    ClassInfo,
    Findings,
    analyse,
    skeleton_candidates,
    skeleton_source,
)
from .tomlcompat import parse_toml

GROUPS = {"model": MODEL_GROUP, "dataset": DATASET_GROUP}


class InitError(UsageError):
    """``torchvet init`` found nothing, or cannot edit the pyproject safely."""


def _line(c: Candidate, width: int) -> str:
    line = f'{c.name:<{width}} = "{c.value}"'
    if c.error:
        return f"# {line}  # TODO: {c.error}"
    if c.todo:
        why = f" ({c.reason})" if c.reason else ""
        return f"# {line}  # TODO: fill in {c.value.partition(':')[2]} first{why}"
    return f"{line}  # {c.reason}" if c.reason else line


def render(candidates: Sequence[Candidate]) -> str:
    """The TOML tables for ``candidates``, grouped: the entries that build as they are,
    those built by the skeleton from the project's examples, then the TODOs (commented
    out: the skeleton's factories to fill in, and what ``--check`` could not build), each
    entry with its reason or its error."""
    blocks = []
    for kind, group in GROUPS.items():
        entries = [c for c in candidates if c.kind == kind]
        if not entries:
            continue
        width = max(len(c.name) for c in entries)
        lines = [f'[project.entry-points."{group}"]']
        ready = [c for c in entries if not c.todo and not c.error]
        direct = [c for c in ready if SKELETON_MODULE not in c.value]
        built = [c for c in ready if SKELETON_MODULE in c.value]
        sections = [
            ("", direct),
            (f"built in {SKELETON_MODULE}.py as the project's own code builds them", built),
            (f"TODO: fill in these factories in {SKELETON_MODULE}.py, then uncomment",
             [c for c in entries if c.todo and not c.error]),
            ("TODO: torchvet init --check could not build these (the error beside each)",
             [c for c in entries if c.error]),
        ]
        for title, members in sections:
            if not members:
                continue
            if title and len(lines) > 1:
                lines.append("")
            if title:
                lines.append(f"# {title}")
            lines += [_line(c, width) for c in members]
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks) + "\n"


def append_stanza(old_text: str, old_data: dict[str, Any], candidates: Sequence[Candidate]
                  ) -> str:
    """``old_text`` with the stanza appended; InitError unless it round-trips."""
    tables = (old_data.get("project") or {}).get("entry-points") or {}
    taken = [GROUPS[c.kind] for c in candidates if GROUPS[c.kind] in tables]
    if taken:
        raise InitError(f'pyproject.toml already has [project.entry-points."{taken[0]}"]: '
                        "add the new lines under it by hand")
    separator = "" if not old_text or old_text.endswith("\n\n") else (
        "\n" if old_text.endswith("\n") else "\n\n")
    new_text = old_text + separator + render(candidates)
    expected = copy.deepcopy(old_data)
    groups = expected.setdefault("project", {}).setdefault("entry-points", {})
    for c in candidates:
        entries = groups.setdefault(GROUPS[c.kind], {})
        if not c.todo and not c.error:
            entries[c.name] = c.value
    try:
        parsed = parse_toml(new_text)
    except ValueError as exc:
        raise InitError(f"appending the stanza would make pyproject.toml invalid ({exc})"
                        ) from None
    if parsed != expected:
        raise InitError("appending the stanza would change more than the new entries "
                        "(the file declares entry points in another form)")
    return new_text


@dataclass
class Plan:
    """The proposal: the candidates, the files to write (path -> new text), the diff."""

    root: Path
    candidates: list[Candidate]
    writes: dict[Path, str] = field(default_factory=dict)
    originals: dict[Path, str] = field(default_factory=dict)
    refusal: str = ""
    note: str = ""
    left_out: list[ClassInfo] = field(default_factory=list)  # layers, with their reason
    checked: int = 0  # entries built by --check
    missing: list[str] = field(default_factory=list)  # dependencies --check could not import
    unchecked: int = 0  # entries --check could not import for those
    skipped: list[str] = field(default_factory=list)  # built; inputs to declare
    slow: list[str] = field(default_factory=list)  # out of --check's time: kept unchecked

    def errors(self) -> list[Candidate]:
        """Entries ``--check`` could not build: commented out with the error."""
        return [c for c in self.candidates if c.error]

    def diff(self) -> str:
        out: list[str] = []
        for path, new in self.writes.items():
            old = self.originals.get(path, "")
            name = path.relative_to(self.root).as_posix()
            out += difflib.unified_diff(
                old.splitlines(keepends=True), new.splitlines(keepends=True),
                f"a/{name}" if path in self.originals else "/dev/null", f"b/{name}")
        return "".join(out)

    def stanza(self) -> str:
        return render(self.candidates)

    def write(self) -> list[Path]:
        if self.refusal:
            raise InitError(f"{self.refusal}. Add this to pyproject.toml by hand:\n\n"
                            f"{self.stanza()}")
        for path, text in self.writes.items():
            path.write_text(text, encoding="utf-8")
        return list(self.writes)


def plan(path: str | Path, check: bool = False, timeout: float = CHECK_TIMEOUT) -> Plan:
    """What ``torchvet init`` would do for the project at ``path``; with ``check``, each
    entry is first built (and its first forward run) in an isolated worker, and those
    that fail move to the skeleton's TODOs with their error."""
    project = load_project(path)
    declared = {value for _, _, value in project_entry_points(project)}
    findings = analyse(project.root, declared)
    base = project.sys_path[0]
    targets = {package: Path(base, package.replace(".", "/"), f"{SKELETON_MODULE}.py")
               for package in findings.skeleton}
    skeleton = {package: classes for package, classes in findings.skeleton.items()
                if not targets[package].exists()}
    candidates = _candidates(findings, skeleton)
    checked = unchecked = 0
    missing: list[str] = []
    skipped: list[str] = []
    slow: list[str] = []
    if check:
        outcome = check_candidates(project, candidates, {
            package: skeleton_source(classes) for package, classes in skeleton.items()},
            timeout=timeout)
        problems, skipped, slow = outcome.problems, outcome.skipped, outcome.slow
        missing = sorted({e.removeprefix(MISSING) for e in problems.values()
                          if e.startswith(MISSING)})
        unchecked = sum(1 for e in problems.values() if e.startswith(MISSING))
        problems = {k: e for k, e in problems.items() if not e.startswith(MISSING)}
        checked = len([c for c in candidates if not c.todo])
        _move_failures(findings, skeleton, candidates, problems, base)
        candidates = _candidates(findings, skeleton)
    writes: dict[Path, str] = {}
    for package, classes in skeleton.items():
        target = Path(base, package.replace(".", "/"), f"{SKELETON_MODULE}.py")
        writes[target] = skeleton_source(classes)
    if not candidates and declared:
        return Plan(project.root, [], note=f"nothing to add: pyproject.toml declares "
                    f"{len(declared)} factories and found no other candidate")
    if not candidates:
        raise InitError(
            f"found no nn.Module subclass, Dataset or factory function to declare in "
            f"{project.root} ({findings.scanned} module(s) read, none imported)")
    result = Plan(project.root, candidates, left_out=findings.left_out, checked=checked,
                  missing=missing, unchecked=unchecked, skipped=skipped, slow=slow)
    if project.pyproject is None:
        result.refusal = f"no pyproject.toml in {project.root}"
        return result
    old_text = project.pyproject.read_text(encoding="utf-8")
    try:
        new_text = append_stanza(old_text, dict(project.data), candidates)
    except InitError as exc:
        result.refusal = str(exc)
        return result
    result.originals[project.pyproject] = old_text
    result.writes = {project.pyproject: new_text, **writes}
    return result


def _candidates(findings: Findings, skeleton: dict[str, list[ClassInfo]]) -> list[Candidate]:
    """The direct entries (less the classes moved to the skeleton), then the skeleton's."""
    moved = {f"{c.module}:{c.name}" for classes in skeleton.values() for c in classes}
    out = [c for c in findings.candidates if c.value not in moved]
    for package, classes in skeleton.items():
        out += skeleton_candidates(package, classes)
    return out


def _move_failures(findings: Findings, skeleton: dict[str, list[ClassInfo]],
                   candidates: list[Candidate], problems: dict[tuple[str, str], str],
                   base: str) -> None:
    """Entries that failed ``--check``: a class goes to its package's skeleton as a TODO
    carrying the error; a factory function's entry is commented out with it."""
    for c in candidates:
        error = problems.get((c.kind, c.name))
        if not error:
            continue
        module, _, attr = c.value.partition(":")
        cls = findings.classes.get(c.value)
        if cls is None and module.endswith(SKELETON_MODULE):
            package = module.rpartition(".")[0] if "." in module else ""
            cls = next((k for k in skeleton.get(package, []) if f"make_{k.entry}" == attr),
                       None)
            if cls is not None:
                cls.error = error
                continue
        package = cls.module.split(".")[0] if cls is not None and "." in cls.module else ""
        target = Path(base, package.replace(".", "/"), f"{SKELETON_MODULE}.py")
        if cls is not None and cls.kind == "model" and (package in skeleton
                                                        or not target.exists()):
            cls.error, cls.entry = error, c.name
            skeleton.setdefault(package, []).append(cls)
        else:
            original = next(x for x in findings.candidates if x.value == c.value)
            original.error = error


def _summary(proposal: Plan) -> list[str]:
    """What ``--check`` moved, what it could not import, and which classes were left out
    as layers (grouped by name), briefly."""
    lines = []
    if proposal.checked:
        failed = proposal.errors()
        skipped = proposal.skipped
        ran = (proposal.checked - len(failed) - proposal.unchecked - len(skipped)
               - len(proposal.slow))
        lines.append(f"checked {proposal.checked} entr{'y' if proposal.checked == 1 else 'ies'}"
                     f" (built, first forward run, each in its own worker): {ran} ran"
                     + (f", {len(skipped)} built but need their inputs declared "
                        f"({', '.join(skipped)}: torchvet run shows how)" if skipped else "")
                     + (f", {len(proposal.slow)} kept unchecked, slower than the check's "
                        f"{CHECK_TIMEOUT:.0f} s ({', '.join(proposal.slow)})"
                        if proposal.slow else "")
                     + (f", {len(failed)} moved to TODO:" if failed else ""))
        lines += [f"  {c.name}: {c.error}" for c in failed]
    if proposal.missing:
        names = " ".join(proposal.missing)
        lines.append(f"could not check the entries that import {', '.join(proposal.missing)}"
                     f": not installed here (kept unchecked); install the project's "
                     f"dependencies (pip install -e . or pip install {names}) and rerun")
    if proposal.left_out:
        counts: dict[str, int] = {}
        for cls in proposal.left_out:
            counts[cls.name] = counts.get(cls.name, 0) + 1
        first = {cls.name: cls.reason for cls in reversed(proposal.left_out)}
        ranked = sorted(counts, key=lambda n: -counts[n])
        shown = [f"{n} ×{counts[n]}" if counts[n] > 1 else f"{n} ({first[n]})"
                 for n in ranked[:LEFT_OUT_SHOWN]]
        more = len(ranked) - len(shown)
        lines.append(f"left out {len(proposal.left_out)} class(es) built only inside other "
                     f"models: {', '.join(shown)}" + (f" and {more} more" if more > 0 else ""))
    return lines


LEFT_OUT_SHOWN = 8


def report(proposal: Plan, write: bool, echo: Callable[[str], None] = print) -> int:
    """Show ``torchvet init``'s proposal (and with ``write``, apply it); the exit code."""
    if not proposal.candidates:
        echo(proposal.note)
        return ExitCode.OK
    if proposal.refusal:
        echo(f"torchvet init cannot edit pyproject.toml: {proposal.refusal}.\n"
             f"Add this to pyproject.toml by hand:\n\n{proposal.stanza()}")
        for line in _summary(proposal):
            echo(line)
        return ExitCode.USAGE if write else ExitCode.OK
    echo(proposal.diff().rstrip("\n"))
    for line in _summary(proposal):
        echo(line)
    todo = [c.name for c in proposal.candidates if c.todo or c.error]
    if not write:
        echo("\nNothing written: `torchvet init --write` applies this.")
        return ExitCode.OK
    for written in proposal.write():
        echo(f"wrote {written}")
    if todo:
        echo(f"fill in the TODO factories ({', '.join(todo)}) and uncomment their entries")
    echo("next: torchvet run")
    return ExitCode.OK
