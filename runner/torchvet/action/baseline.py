"""The action's ``baseline`` input: what the ``regression.*`` checks compare with.

``snapshot`` (the default) compares with the snapshots committed under
``.torchvet/snapshots``; nothing to add to the command line. A git ref (the pull
request's base SHA) is handed to ``torchvet run --baseline REF``, which checks the base's
files out into a temporary directory with a private git index (the workspace's git state
is untouched, no hook runs), takes each unit's snapshot there in its own worker with the
base's import roots first on ``sys.path``, and compares the pull request against them; the
job summary then carries the Model changes table. That run is part of ``torchvet run``,
so it runs where and as whoever runs user code (:mod:`.untrusted`): the base's factories
are user code too.
"""

from __future__ import annotations

from .inputs import Inputs


def run_arguments(inputs: Inputs) -> list[str]:
    """The ``torchvet run`` arguments of the ``baseline`` input."""
    if inputs.baseline in ("", "snapshot"):
        return []
    return ["--baseline", inputs.baseline]
