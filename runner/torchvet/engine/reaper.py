"""Every process a unit leaves behind is killed when the unit ends.

A worker leads its own process group, but a double fork plus ``setsid`` leaves it: such a
daemon survives ``killpg`` and could write into the log after the run's stop-commands
block closed. So the run process makes itself a *child subreaper* (an orphan of any of
its descendants is re-parented to it, not to init) and, when a unit ends, kills every
descendant that no live unit can own: the orphans outside a live unit's session, the fork
server's children that are not a live worker (once no unit runs, or when they left the
fork server's session). At the end of the run every descendant but torchvet's own
helpers (the fork server, multiprocessing's resource tracker) is killed.

The process table comes from ``/proc`` (Linux); elsewhere only process groups are killed.
A unit's processes are told apart by parent chain and session, which a hostile unit can
blur only towards being killed sooner.
"""

from __future__ import annotations

import contextlib
import multiprocessing.forkserver as forkserver
import multiprocessing.resource_tracker as resource_tracker
import os
import signal
import time
from collections.abc import Iterable
from dataclasses import dataclass

from . import prctl

ROUNDS = 200  # kill-and-rescan rounds before giving up on a fork bomb
_state = {"subreaper": False}


@dataclass(frozen=True)
class Proc:
    pid: int
    ppid: int
    pgid: int
    sid: int
    state: str
    uid: int = -1


def read_proc(pid: int) -> Proc | None:
    """One process from ``/proc/<pid>/stat`` (and its real uid), None when it is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            stat = handle.read().decode("ascii", "replace")
        with open(f"/proc/{pid}/status", "rb") as handle:
            status = handle.read().decode("ascii", "replace")
    except OSError:
        return None
    fields = stat.rpartition(")")[2].split()  # the command name may hold spaces and ')'
    uid = next((int(line.split()[1]) for line in status.splitlines()
                if line.startswith("Uid:")), -1)
    try:
        return Proc(pid, int(fields[1]), int(fields[2]), int(fields[3]), fields[0], uid)
    except (IndexError, ValueError):
        return None


def process_table() -> dict[int, Proc]:
    """Every process this one can see (empty where there is no ``/proc``)."""
    try:
        names = os.listdir("/proc")
    except OSError:
        return {}
    table = {}
    for name in names:
        if name.isdigit():
            found = read_proc(int(name))
            if found is not None:
                table[found.pid] = found
    return table


def children_of(table: dict[int, Proc]) -> dict[int, list[int]]:
    index: dict[int, list[int]] = {}
    for proc in table.values():
        index.setdefault(proc.ppid, []).append(proc.pid)
    return index


def subtree(index: dict[int, list[int]], root: int) -> set[int]:
    found, todo = set(), [root]
    while todo:
        pid = todo.pop()
        if pid not in found:
            found.add(pid)
            todo.extend(index.get(pid, ()))
    return found


def is_descendant(table: dict[int, Proc], pid: int, ancestor: int) -> bool:
    seen = set()
    while pid in table and pid not in seen and pid > 1:
        seen.add(pid)
        pid = table[pid].ppid
        if pid == ancestor:
            return True
    return False


def become_subreaper() -> bool:
    """Make this process the child subreaper of its descendants (the run process does,
    before starting any worker); sweeping orphans is only done where this held."""
    _state["subreaper"] = prctl.set_child_subreaper()
    return _state["subreaper"]


def helpers() -> set[int]:
    """torchvet's own long-lived children: the fork server and the resource tracker."""
    pids = set()
    for owner, attr in ((getattr(forkserver, "_forkserver", None), "_forkserver_pid"),
                        (getattr(resource_tracker, "_resource_tracker", None), "_pid")):
        pid = getattr(owner, attr, None)
        if isinstance(pid, int):
            pids.add(pid)
    return pids


def kill(pids: Iterable[int]) -> int:
    count = 0
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)
            count += 1
    return count


class Reaper:
    """The workers of one run (tracked by the executor) and what they leave behind."""

    def __init__(self) -> None:
        self.me = os.getpid()
        self.live: set[int] = set()  # workers whose unit has not ended
        self.started: set[int] = set()  # every worker of the run
        self.blamed: dict[int, str] = {}  # worker -> why it was stopped (signals)

    def track(self, pid: int) -> None:
        self.live.add(pid)
        self.started.add(pid)

    def release(self, pid: int) -> int:
        """The unit of worker ``pid`` ended: kill its group, then every stray."""
        self.live.discard(pid)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, signal.SIGKILL)
        return self.sweep()

    def unit_of(self, pid: int, table: dict[int, Proc] | None = None) -> int | None:
        """The live worker whose unit ``pid`` belongs to (by parent chain or session)."""
        table = process_table() if table is None else table
        if pid in self.live:
            return pid
        probe, seen = pid, set()
        while probe in table and probe not in seen:
            seen.add(probe)
            probe = table[probe].ppid
            if probe in self.live:
                return probe
        session = table[pid].sid if pid in table else None
        return session if session in self.live else None

    def is_ours(self, pid: int) -> bool:
        """Whether ``pid`` is (or was, if it is gone) a process of this run's units."""
        table = process_table()
        if pid in table:
            return is_descendant(table, pid, self.me) and pid not in helpers()
        return pid in self.started

    def blame(self, pid: int, reason: str) -> int | None:
        """Stop the unit process ``pid`` belongs to, remembering ``reason`` for its report;
        returns the worker, or None when no live unit owns ``pid`` (it is killed)."""
        unit = self.unit_of(pid)
        if unit is None:
            if self.is_ours(pid):
                kill([pid])
            return None
        self.blamed.setdefault(unit, reason)  # the first signal names it
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(unit, signal.SIGKILL)
        return unit

    def strays(self, table: dict[int, Proc], final: bool) -> set[int]:
        """The descendants no live unit can own (all but the helpers when ``final``)."""
        index = children_of(table)
        own = helpers()
        found: set[int] = set()
        for child in index.get(self.me, ()):
            if child in self.live:
                continue  # spawn start method: workers are our children
            if child in own:
                for grandchild in index.get(child, ()):
                    if grandchild in self.live:
                        continue
                    shared = table[grandchild].sid == table[child].sid
                    if not final and self.live and shared:
                        continue  # maybe a live unit's DataLoader worker (fresh_process)
                    found |= subtree(index, grandchild)
                continue
            if not final and table[child].sid in self.live:
                continue  # an orphan still in a live unit's session
            found |= subtree(index, child)
        return {pid for pid in found if table[pid].state not in ("Z", "X")}

    def reap(self, table: dict[int, Proc]) -> None:
        """Collect the zombies of orphans re-parented to us (never a worker or helper,
        whose exit status multiprocessing reads itself)."""
        keep = self.started | helpers()
        for proc in table.values():
            if proc.ppid == self.me and proc.state == "Z" and proc.pid not in keep:
                with contextlib.suppress(ChildProcessError, OSError):
                    os.waitpid(proc.pid, os.WNOHANG)

    def sweep(self, final: bool = False) -> int:
        """Kill the strays until none is left; returns how many kills it took."""
        if not _state["subreaper"]:
            return 0
        killed = 0
        for _ in range(ROUNDS):
            table = process_table()
            self.reap(table)
            targets = self.strays(table, final)
            if not targets:
                return killed
            killed += kill(targets)
            time.sleep(0.002)  # let the kernel finish them before the next scan
        return killed
