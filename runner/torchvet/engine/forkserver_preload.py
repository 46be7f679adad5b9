"""Imported first by the fork server (a preload of :func:`.executor.mp_context`): the
fork server ignores the signals a unit could send its parent to break the run, and every
process it forks gets the default handling back.

A worker's parent is the fork server, and a unit may signal it (``os.kill(os.getppid(),
SIGTERM)``): its death would end every worker running beside it. multiprocessing already
makes it ignore SIGINT; this adds the other signals that end a process by default, and
unblocks them all in case the fork server was started while the run process had them
blocked (:mod:`.signals`). Anywhere else, importing this module does nothing.
"""

from __future__ import annotations

import os
import signal
import sys

_NAMES = ("SIGTERM", "SIGHUP", "SIGQUIT", "SIGUSR1", "SIGUSR2", "SIGALRM", "SIGVTALRM",
          "SIGPROF", "SIGIO", "SIGPWR", "SIGTSTP", "SIGTTIN", "SIGTTOU")
GUARDED = (*(getattr(signal, n) for n in _NAMES if hasattr(signal, n)),
           *(range(signal.SIGRTMIN, signal.SIGRTMAX + 1) if hasattr(signal, "SIGRTMIN")
             else ()))


def in_fork_server() -> bool:
    """Imported from inside ``multiprocessing.forkserver.main``, which imports the
    preloads: not merely in a ``python -c`` process that imported that module (a pytest
    xdist worker is one)."""
    frame = sys._getframe(1)
    while frame is not None:
        if (frame.f_code.co_name == "main"
                and frame.f_globals.get("__name__") == "multiprocessing.forkserver"):
            return True
        frame = frame.f_back  # type: ignore[assignment]
    return False


def restore_defaults() -> None:
    for signum in GUARDED:
        signal.signal(signum, signal.SIG_DFL)
    if hasattr(signal, "pthread_sigmask"):
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {*GUARDED, signal.SIGINT})


def guard() -> None:
    for signum in GUARDED:
        signal.signal(signum, signal.SIG_IGN)
    if hasattr(signal, "pthread_sigmask"):
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {*GUARDED, signal.SIGINT})
    os.register_at_fork(after_in_child=restore_defaults)


if in_fork_server():
    guard()
