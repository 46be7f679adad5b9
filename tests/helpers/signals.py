"""Ctrl-C in tests that do not depend on how pytest was started.

A test run started with SIGINT ignored (a shell's background job, some CI runners)
passes that on: ``os.kill(pid, SIGINT)`` then does nothing, and a child Python started
from it never installs its KeyboardInterrupt handler. Tests that send SIGINT use these.
"""

from __future__ import annotations

import contextlib
import signal
from collections.abc import Iterator


def restore_sigint() -> None:
    """``preexec_fn`` for a child that is sent SIGINT: the default disposition, so a
    Python child turns it into KeyboardInterrupt."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@contextlib.contextmanager
def default_int_handler() -> Iterator[None]:
    """SIGINT raises KeyboardInterrupt in this process while the block runs."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
