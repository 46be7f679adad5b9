"""``torchvet snapshot``: record each selected unit's snapshot, the baseline the
regression checks compare with; the body lives with the rest of the feature in
:mod:`torchvet.regression.command`."""

from __future__ import annotations

from ..github.console import commands_off, in_actions_log
from ..options import RunOptions
from ..regression.command import snapshot_units
from ..session import select_units, settle, shield_environment, stderr_into_stdout


def snapshot(path: str, options: RunOptions, *, installed: bool | None = None,
             update: bool = False, output: str | None = None) -> int:
    """Write (or, with ``update``, rewrite) the snapshots of the units at ``path``;
    exit 1 when one differs and is left alone."""
    shield_environment()  # the units are the project's code: guarded like a run's
    sel = select_units(path, options.models, options.exclude, installed)
    options = settle(options, sel)
    with commands_off(), stderr_into_stdout(in_actions_log()):
        return snapshot_units(sel, options, update=update, output=output)
