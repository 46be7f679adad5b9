"""The action's ``baseline`` input: what the ``regression.*`` checks compare with.

``snapshot`` (the default) compares with the snapshots committed under
``.torchvet/snapshots``; nothing to add to the command line. A git ref (the pull
request's base SHA) is handed to ``torchvet run --baseline REF``, which checks the base's
files out into a temporary directory with a private git index (the workspace's git state
is untouched, no hook runs), takes each unit's snapshot there in its own worker with the
base's import roots first on ``sys.path``, and compares the pull request against them; the
job summary then carries the Model changes table.

The base's factories are the project's code too, and the base ref names whatever commit
the workflow passes, so all of it happens inside ``torchvet run``, never in the
entrypoint: in the image that is the sandbox's account (:mod:`.sandbox`), in its copy of
the workspace (:mod:`.workspace_copy`: ``.git`` included, credentials dropped), so git
reads the copy's ``.git`` as that account and the base's units run unprivileged, exactly
like the pull request's. A pull request can therefore tamper with its own baseline (its
install step can rewrite the copy's ``.git``), never with the job: like its verdicts, the
Model changes are the pull request's own claims.
"""

from __future__ import annotations

from .inputs import Inputs


def run_arguments(inputs: Inputs) -> list[str]:
    """The ``torchvet run`` arguments of the ``baseline`` input."""
    if inputs.baseline in ("", "snapshot"):
        return []
    return ["--baseline", inputs.baseline]
