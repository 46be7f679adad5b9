"""``torchvet init``: propose the entry-point stanza for the models and datasets found
by reading the project's sources (and, with ``check``, building each in a worker); write
it only when asked."""

from __future__ import annotations

import click

from ..project.stanza import plan, report


def init(path: str, *, write: bool = False, check: bool | None = None) -> int:
    """Show the proposal for the project at ``path`` as a diff; apply it with ``write``.
    ``check`` (default: on with ``write``) builds each entry before proposing it."""
    return report(plan(path, check=write if check is None else check), write, echo=click.echo)
