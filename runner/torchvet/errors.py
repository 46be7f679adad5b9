"""User errors and exit codes: one root raised deep, caught once at the top.

A :class:`UsageError` is a problem the user must fix before anything can run (a bad
option, configuration, entry point, git ref, report file, Docker setup). Each message
names the fix. The command line catches it once, prints it, and exits
:attr:`ExitCode.USAGE`; nothing in between translates it.
"""

from __future__ import annotations

import enum


class ExitCode(enum.IntEnum):
    """Every exit status torchvet and its action use."""

    OK = 0
    FAILED = 1  # a check failed (or warned, under --fail-on warning)
    USAGE = 2  # a UsageError: options, configuration, nothing to check, setup
    INTERNAL = 3  # a bug in torchvet: the traceback is printed
    INTERRUPTED = 130  # Ctrl-C or SIGTERM: the reports hold what finished


class UsageError(Exception):
    """A problem the user must fix; the message says what to do."""
