"""The regression feature's entry points for the commands: ``torchvet snapshot``, and the
baseline of ``torchvet run --baseline``. Both build jobs through :mod:`torchvet.session`,
so they sit above it; nothing below imports this module.

A run's baseline is, per unit, one of:

- ``snapshot`` (the default): the snapshot files committed under ``.torchvet/snapshots``;
- a directory of snapshot files (``torchvet snapshot --output DIR`` wrote them);
- a git ref: the ref's files are checked out into a temporary directory
  (:mod:`.base_ref`) and each unit's snapshot is taken there, in its own worker with the
  base's import roots first on ``sys.path``, so the factories are the base's code and not
  the installed (pull request's) package.

``torchvet snapshot`` takes every selected unit's snapshot through the engine and
creates, extends, keeps or (with ``--update``) rewrites its file (:mod:`.update`). This
module never imports torch.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import TextIO

from .. import __version__
from ..options import RunOptions
from ..project.config import load_config
from ..project.discovery import discover
from ..project.paths import find_report_root
from ..reporters.terminal import printable
from ..session import Selection, build_jobs, torch_version
from .base_ref import BaseCheckout, export
from .jobs import Key, SnapshotRun, take_snapshots
from .store import (
    Baseline,
    SnapshotError,
    load_baselines,
    read,
    snapshot_dir,
    snapshot_path,
    write,
)
from .update import ADDED, DIFFERS, UPDATED, decide

COMMITTED = "snapshot"


def units(sel: Selection) -> list[Key]:
    return [(f.kind, f.name) for f in sel.factories]


def resolve_baselines(sel: Selection, baseline: str | None, options: RunOptions
                      ) -> dict[Key, Baseline]:
    """Each selected unit's baseline under ``--baseline`` (see the module's docstring)."""
    root = find_report_root(sel.project.root)
    if not baseline or baseline == COMMITTED:
        return load_baselines(snapshot_dir(sel.project.root), units(sel), root=root)
    if Path(baseline).is_dir():
        return load_baselines(Path(baseline), units(sel), root=root)
    return from_base_ref(sel, baseline, options)


def from_base_ref(sel: Selection, ref: str, options: RunOptions) -> dict[Key, Baseline]:
    """Snapshots of the selected units as the base ref has them (a note says how it went)."""
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="torchvet-base-") as scratch:
        base = export(sel.project.root, ref, Path(scratch) / "base")
        found, missing = base_selection(sel, base)
        run = take_snapshots(build_jobs(found, options), options.jobs, options.capture) \
            if found.factories else SnapshotRun({}, [])
    if run.interrupted:
        raise KeyboardInterrupt
    baselines = dict(missing)
    failed = []
    for report in run.reports:
        sent = run.snapshots.get((report.kind, report.name))
        if sent is not None and sent.data is not None:
            baselines[(report.kind, report.name)] = Baseline(sent.data, base.label,
                                                             origin=base.label)
        else:
            why = run.problem(report)
            failed.append(f"{report.name} ({why})")
            baselines[(report.kind, report.name)] = Baseline(
                None, base.label, f"no baseline: {base.label} could not be snapshotted: {why}")
    taken = sum(1 for b in baselines.values() if b.snapshot is not None)
    note = (f"--baseline {ref}: {taken} unit(s) of {base.label} snapshotted in "
            f"{time.monotonic() - started:.1f} s")
    if failed:
        note += f"; not {', '.join(failed)}"
    sel.notes.append(note)
    return baselines


def base_selection(sel: Selection, base: BaseCheckout
                   ) -> tuple[Selection, dict[Key, Baseline]]:
    """The base's counterparts of the selected units, and why the others have none: a
    unit the base lacks, or whose factory is not in the base's files (an installed
    package's would be the pull request's code)."""
    missing: dict[Key, Baseline] = {}
    if not base.project.is_dir():
        for key in units(sel):
            missing[key] = Baseline(None, base.label, f"no baseline: {base.label} has no "
                                    f"{base.project.relative_to(base.root)} directory")
        return Selection(sel.project, sel.config, [], []), missing
    project, found = discover(base.project, include_installed=False)
    by_key = {(f.kind, f.name): f for f in found}
    chosen = []
    for key in units(sel):
        factory = by_key.get(key)
        inside = factory is not None and factory.file is not None and \
            Path(factory.file).resolve().is_relative_to(base.root.resolve())
        if factory is None:
            missing[key] = Baseline(None, base.label, f"no baseline: {key[1]} is new (not a "
                                    f"torchvet entry point in {base.label})")
        elif not inside:
            missing[key] = Baseline(None, base.label, f"no baseline: {factory.value} is not "
                                    f"in the files of {base.label}")
        else:
            chosen.append(factory)
    config = load_config(project.pyproject, project.data)
    return Selection(project, config, chosen, found), missing


# --------------------------------------------------------------------------- the command


def snapshot_units(sel: Selection, options: RunOptions, *, update: bool,
                   output: str | None = None, stream: TextIO | None = None) -> int:
    """``torchvet snapshot``: take, compare, write; 1 when a snapshot differs (without
    ``--update``) or could not be taken."""
    out = stream or sys.stdout
    directory = Path(output) if output else snapshot_dir(sel.project.root)
    root = find_report_root(sel.project.root)
    out.write(f"torchvet {__version__} · torch {torch_version()} · snapshot of "
              f"{len(sel.factories)} unit(s) · seed {options.seed} → {_shown(directory, root)}\n")
    for note in sel.notes:
        out.write(f"note: {printable(note)}\n")
    out.flush()
    run = take_snapshots(build_jobs(sel, options), options.jobs, options.capture)
    if run.interrupted:
        raise KeyboardInterrupt
    width = max((len(f.name) for f in sel.factories), default=0)
    bad = 0
    tally: Counter[str] = Counter()
    for report in run.reports:
        sent = run.snapshots.get((report.kind, report.name))
        path = snapshot_path(directory, report.kind, report.name)
        shown = _shown(path, root)
        if sent is None or sent.data is None:
            bad += 1
            tally["error"] += 1
            _line(out, "error", report.name, width, run.problem(report))
            continue
        try:
            old = read(path, report.kind, report.name)
        except SnapshotError as exc:
            if not update:
                bad += 1
                tally["error"] += 1
                _line(out, "error", report.name, width, f"{exc}")
                continue
            old = None
        decision = decide(old, sent.data, update)
        tally[decision.action] += 1
        if decision.snapshot is not None:
            size = write(path, decision.snapshot)
            shown += f" ({size / 1024:.1f} KB)"
        if decision.action == DIFFERS:
            bad += 1
            _line(out, decision.action, report.name, width,
                  f"{shown}: {decision.differences[0]}"
                  + (f" (+{len(decision.differences) - 1} more)"
                     if len(decision.differences) > 1 else ""))
            for line in decision.differences[1:6]:
                _line(out, "", "", width, f"  {line}")
            _line(out, "", "", width, f"accept it with `torchvet snapshot --update -k "
                                      f"{report.name}`; `torchvet run` shows the verdicts")
            continue
        _line(out, decision.action, report.name, width, shown)
        if decision.action in (UPDATED, ADDED):
            for line in [*decision.differences[:6], *decision.notes]:
                _line(out, "", "", width, f"  {line}")
    out.write(", ".join(f"{n} {action}" for action, n in sorted(tally.items())) + "\n")
    out.flush()
    return 1 if bad else 0


def _line(out: TextIO, action: str, name: str, width: int, text: str) -> None:
    out.write(f"{action:<10} {printable(name):<{width}}  {printable(text)}\n")


def _shown(path: Path, root: Path) -> str:
    try:
        return path.resolve().relative_to(root.resolve()).as_posix()
    except ValueError:
        return os.fspath(path)

