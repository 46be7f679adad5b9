"""What ``torchvet init`` proposes and the one edit it makes: the entry-point stanza
appended to pyproject.toml (the rest of the file untouched, byte for byte), accepted only
when re-parsing the result gives the old data plus exactly the new entries — otherwise
torchvet prints the stanza and says how to add it by hand. A factories skeleton is
written for classes that need constructor arguments, never over an existing file."""

from __future__ import annotations

import copy
import difflib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import UsageError
from .discovery import DATASET_GROUP, MODEL_GROUP, load_project, project_entry_points
from .scaffold import SKELETON_MODULE, Candidate, analyse, skeleton_candidates, skeleton_source
from .tomlcompat import parse_toml

GROUPS = {"model": MODEL_GROUP, "dataset": DATASET_GROUP}


class InitError(UsageError):
    """``torchvet init`` found nothing, or cannot edit the pyproject safely."""


def render(candidates: Sequence[Candidate]) -> str:
    """The TOML tables for ``candidates``; skeleton factories commented out (TODO)."""
    blocks = []
    for kind, group in GROUPS.items():
        entries = [c for c in candidates if c.kind == kind]
        if not entries:
            continue
        width = max(len(c.name) for c in entries)
        lines = [f'[project.entry-points."{group}"]']
        for c in entries:
            line = f'{c.name:<{width}} = "{c.value}"'
            lines.append(f"# {line}  # TODO: fill in {c.value.partition(':')[2]} first"
                         if c.todo else line)
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
        if not c.todo:
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


def plan(path: str | Path) -> Plan:
    """What ``torchvet init`` would do for the project at ``path``."""
    project = load_project(path)
    declared = {value for _, _, value in project_entry_points(project)}
    findings = analyse(project.root, declared)
    candidates = list(findings.candidates)
    writes: dict[Path, str] = {}
    for package, classes in findings.skeleton.items():
        base = project.sys_path[0]
        target = Path(base, package.replace(".", "/"), f"{SKELETON_MODULE}.py")
        if not target.exists():
            writes[target] = skeleton_source(classes)
            candidates += skeleton_candidates(package, classes)
    if not candidates and declared:
        return Plan(project.root, [], note=f"nothing to add: pyproject.toml declares "
                    f"{len(declared)} factories and found no other candidate")
    if not candidates:
        raise InitError(
            f"found no nn.Module subclass, Dataset or factory function to declare in "
            f"{project.root} ({findings.scanned} module(s) read, none imported)")
    result = Plan(project.root, candidates)
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
