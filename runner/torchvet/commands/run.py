"""``torchvet run``: check every selected unit and report; the exit code follows
fail-on."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from ..errors import ExitCode
from ..options import RunOptions
from ..regression.command import resolve_baselines
from ..results import exit_code_for
from ..session import (
    execute,
    select_units,
    settle,
    shield_environment,
    validate_checks,
    validate_config_checks,
)


def run(path: str, options: RunOptions, *, installed: bool | None = None,
        durations: Sequence[str] = (), baseline: str | None = None) -> int:
    """Run the checks on the factories at ``path``; ``durations`` balance ``--shard``,
    ``baseline`` is what the regression checks compare with (``--baseline``)."""
    shield_environment()  # before git or anything else starts
    sel = select_units(path, options.models, options.exclude, installed, options.shard,
                       options.changed_since, durations)
    if sel.changes is not None:  # nothing affected is a success: the run is empty
        sel.notes.insert(0, sel.changes.summary(len(sel.factories), len(sel.all_factories)))
    options = replace(options, checks=validate_checks(options.checks))
    validate_config_checks(sel.config)
    options = settle(options, sel)
    done = execute(sel, options, baselines=lambda: resolve_baselines(sel, baseline, options))
    if done.interrupted:
        return ExitCode.INTERRUPTED
    return exit_code_for(done, options.run_fail_on)
