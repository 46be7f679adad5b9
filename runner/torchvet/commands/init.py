"""``torchvet init``: propose the entry-point stanza for the models and datasets found
by reading the project's sources; write it only when asked."""

from __future__ import annotations

import click

from ..errors import ExitCode
from ..project.stanza import plan


def init(path: str, *, write: bool = False) -> int:
    """Show the proposal for the project at ``path`` as a diff; apply it with ``write``."""
    proposal = plan(path)
    if not proposal.candidates:
        click.echo(proposal.note)
        return ExitCode.OK
    if proposal.refusal:
        click.echo(f"torchvet init cannot edit pyproject.toml: {proposal.refusal}.\n"
                   f"Add this to pyproject.toml by hand:\n\n{proposal.stanza()}")
        return ExitCode.USAGE if write else ExitCode.OK
    click.echo(proposal.diff(), nl=False)
    todo = [c.name for c in proposal.candidates if c.todo]
    if not write:
        click.echo("\nNothing written: `torchvet init --write` applies this.")
        return ExitCode.OK
    for written in proposal.write():
        click.echo(f"wrote {written}")
    if todo:
        click.echo(f"fill in the TODO factories ({', '.join(todo)}) and uncomment their entries")
    click.echo("next: torchvet run")
    return ExitCode.OK
