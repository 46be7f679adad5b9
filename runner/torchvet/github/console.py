"""Printing into a GitHub Actions step log, which obeys workflow commands: whether our
output goes straight into one, a block whose output can issue none, and error lines with
every command neutralised. The commands print through these; elsewhere they do nothing.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator

import click

from .workflow import RELAYED_ENV, neutralize, stop_commands


def in_actions_log() -> bool:
    """Whether our output goes straight into a GitHub Actions step log (which obeys
    workflow commands); not when the action relays it inside its own stop-commands
    block."""
    return os.environ.get("GITHUB_ACTIONS") == "true" and os.environ.get(RELAYED_ENV) != "1"


@contextlib.contextmanager
def commands_off() -> Iterator[None]:
    """In a GitHub Actions log, what the block prints (names, messages, paths of the
    project) sits inside a stop-commands block: it cannot issue workflow commands."""
    if not in_actions_log():
        yield
        return
    sys.stdout.flush()
    resume = stop_commands(sys.stdout)
    try:
        yield
    finally:
        sys.stdout.flush()
        sys.stdout.write(resume)
        sys.stdout.flush()


def echo_err(text: str) -> None:
    """A line on stderr; in an Actions log with every ``::`` and ``##[`` neutralised
    (stderr is read for commands too, and a block on stdout does not order with it)."""
    click.echo(neutralize(text) if in_actions_log() else text, err=True)
