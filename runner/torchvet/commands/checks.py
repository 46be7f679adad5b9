"""``torchvet checks``: the catalogue, one line (or JSON object) per check."""

from __future__ import annotations

import json

import click

from ..checks.catalogue import CATALOGUE
from ..errors import ExitCode


def list_checks(*, as_json: bool = False) -> int:
    """Print every check: id, whether it runs by default, what it catches."""
    if as_json:
        click.echo(json.dumps(
            [{"id": m.id, "default": m.default, "units": list(m.units), "summary": m.summary}
             for m in CATALOGUE.values()], indent=2))
        return ExitCode.OK
    for meta in CATALOGUE.values():
        flag = "" if meta.default else "  (opt-in)"
        click.echo(f"{meta.id:<28} {meta.summary}{flag}")
    return ExitCode.OK
