"""``torchvet list``: the factories a run would check, found without importing them;
with ``--changed-since``, the ones a change affects and why."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path

import click

from ..errors import ExitCode
from ..github.console import commands_off, echo_err
from ..session import select_units


def list_units(path: str, *, models: Sequence[str] = (), exclude: Sequence[str] = (),
               changed_since: str | None = None, installed: bool | None = None,
               as_json: bool = False) -> int:
    """Print the selected factories at ``path``, as lines or as JSON."""
    sel = select_units(path, models, exclude, installed, changed_since=changed_since)
    changes = sel.changes
    if as_json:
        rows = [f.to_dict() | ({"changed": changes.why(f)} if changes else {})
                for f in sel.factories]
        with commands_off():
            click.echo(json.dumps(rows, indent=2))
        return ExitCode.OK
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
    return ExitCode.OK


def _short(file: str | None, root: Path) -> str:
    if not file:
        return ""
    prefix = str(root).rstrip(os.sep) + os.sep  # string ops: list prints 1000s of these
    if file.startswith(prefix):
        return file[len(prefix):].replace(os.sep, "/")
    return file
