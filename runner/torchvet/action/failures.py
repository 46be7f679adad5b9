"""Why the action could not run: the titles of its ``::error`` annotations (``torchvet:
<title>``), written by the entrypoint and read back by ``torchvet docker``, which turns
the first into a setup check of the cell's report."""

from __future__ import annotations

INVALID_INPUT = "invalid input"  # one annotation per input: invalid input 'NAME'
INVALID_INPUTS = "invalid inputs"  # the job summary's title
PATH_NOT_FOUND = "path not found"
NOTHING_TO_INSTALL = "nothing to install"
TORCH_INSTALL = "torch install failed"
INSTALL = "install failed"
NO_FACTORIES = "no factories found"
CONFIGURATION = "configuration error"
UNREADABLE_REPORT = "unreadable report"
REPORT_FILE = "report not written"
UNSAFE_RUNNER = "unsafe runner"
SANDBOX = "sandbox setup failed"
INTERNAL = "internal error"

# title (a prefix of it) -> the check id of the cell's synthetic setup unit
SETUP_CHECKS = (
    (TORCH_INSTALL, "setup.torch"),
    (INSTALL, "setup.install"),
    (INVALID_INPUT, "setup.inputs"),
    (PATH_NOT_FOUND, "setup.path"),
    (NOTHING_TO_INSTALL, "setup.path"),
    (NO_FACTORIES, "setup.config"),
    (CONFIGURATION, "setup.config"),
    (UNSAFE_RUNNER, "setup.container"),
    (SANDBOX, "setup.container"),
)
UNKNOWN_CHECK = "setup.container"


def setup_check(title: str) -> str:
    """The setup check an annotation title (with or without ``torchvet: ``) stands for."""
    title = title.removeprefix("torchvet: ")
    return next((check for prefix, check in SETUP_CHECKS if title.startswith(prefix)),
                UNKNOWN_CHECK)
