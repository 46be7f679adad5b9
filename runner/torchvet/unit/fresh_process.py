"""Fresh processes for checks that need one (``data.workers``), without a new ``import torch``.

``data.workers`` must load a batch in a process that has none of the project's modules or
globals, as a spawn-started DataLoader worker (the macOS/Windows default) has. A spawn
child is a new interpreter importing torch: 3 s or more of CPU per dataset. The run's fork
server is exactly such a fresh state with torch already imported, so a unit worker (one
of its children) borrows it: multiprocessing's ``forkserver`` context then forks the
DataLoader workers from that server. Where that is not possible (spawn start method,
in-process use, a Python whose fork server refuses) the context is plain spawn.

Processes forked by the server are not in the unit worker's process group, so they get a
``worker_init_fn`` (:class:`ExitWithUnit`) that ends them when the unit worker is gone.
"""

from __future__ import annotations

import multiprocessing
import multiprocessing.forkserver as forkserver
import multiprocessing.resource_tracker as resource_tracker
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

PROBE_TIMEOUT = 10.0  # seconds for the first borrowed process to start and exit
_state: dict[str, Any] = {"borrowed": False, "probed": None}


def borrow_fork_server(address: str | None) -> bool:
    """In a unit worker started by the run's fork server (``address``), make the
    ``forkserver`` context start its processes from that server. Returns whether it did."""
    if not address:
        return False
    try:
        server: Any = forkserver._forkserver
        if server._forkserver_alive_fd is None or getattr(server, "_forkserver_authkey",
                                                          None) is not None:
            return False  # not a fork-server child, or a server that authenticates clients
        server._forkserver_address = address
        server.ensure_running = resource_tracker.ensure_running
    except Exception:
        return False
    _state["borrowed"] = True
    return True


def _probe() -> None:
    """Target of the probe process: starting and exiting 0 is the test."""


def context() -> tuple[Any, str]:
    """The multiprocessing context for fresh processes, and how to name it in messages."""
    spawn = multiprocessing.get_context("spawn")
    if not _state["borrowed"]:
        return spawn, "spawn"
    if _state["probed"] is None:
        _state["probed"] = _works(multiprocessing.get_context("forkserver"))
    if _state["probed"]:
        return multiprocessing.get_context("forkserver"), "fresh (spawn-like)"
    return spawn, "spawn"


def _works(ctx: Any) -> bool:
    try:
        process = ctx.Process(target=_probe, daemon=True)
        process.start()
        process.join(PROBE_TIMEOUT)
        if process.exitcode is None:
            process.kill()
        return process.exitcode == 0
    except Exception:
        return False


def uses_fork_server(ctx: Any) -> bool:
    return getattr(ctx, "_name", "") == "forkserver"


def _exit_when_gone(pid: int) -> None:
    while True:
        time.sleep(0.5)
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            os._exit(0)
        except PermissionError:  # the pid was reused by another user's process
            os._exit(0)


@dataclass(frozen=True)
class ExitWithUnit:
    """``worker_init_fn`` for DataLoader workers forked by the fork server: exits when the
    unit worker ``pid`` is gone (a timeout killed its process group, which these workers
    are not in), then calls the dataset's own ``worker_init_fn``."""

    pid: int
    user: Callable[[int], Any] | None = None

    def __call__(self, worker_id: int) -> None:
        threading.Thread(target=_exit_when_gone, args=(self.pid,), daemon=True,
                         name="torchvet-exit-with-unit").start()
        if self.user is not None:
            self.user(worker_id)
