"""What a unit leaves behind is found (parent chain, session) and killed: which processes
count as strays, and a real double-forked setsid daemon killed by a subreaper."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

from torchvet.engine import reaper
from torchvet.engine.reaper import Proc, Reaper, is_descendant, process_table

ME, FORK_SERVER, TRACKER = 100, 101, 102


def table(*procs: tuple[int, int, int, str]) -> dict[int, Proc]:
    """(pid, ppid, sid, state) rows; the group is the pid."""
    return {pid: Proc(pid, ppid, pid, sid, state) for pid, ppid, sid, state in procs}


@pytest.fixture
def run_reaper(monkeypatch: pytest.MonkeyPatch) -> Reaper:
    monkeypatch.setattr(reaper, "helpers", lambda: {FORK_SERVER, TRACKER})
    found = Reaper()
    found.me = ME
    found.track(200)  # a live worker, its own session
    return found


PROCS = table(
    (ME, 1, ME, "S"), (FORK_SERVER, ME, ME, "S"), (TRACKER, ME, ME, "S"),
    (200, FORK_SERVER, 200, "S"),  # the live worker
    (210, 200, 200, "S"),  # its child
    (201, FORK_SERVER, ME, "S"),  # a fork-server child in its session: a DataLoader worker?
    (202, FORK_SERVER, 202, "S"),  # a fork-server child that left for its own session
    (300, ME, 200, "S"),  # an orphan still in the live unit's session
    (301, ME, 301, "S"), (302, 301, 301, "S"),  # a setsid daemon and its child
    (303, ME, 303, "Z"),  # a zombie: reaped, not killed
)


def test_while_a_unit_runs_only_what_no_live_unit_can_own_is_a_stray(
        run_reaper: Reaper) -> None:
    assert run_reaper.strays(PROCS, final=False) == {202, 301, 302}


def test_at_the_end_everything_but_the_helpers_goes(run_reaper: Reaper) -> None:
    run_reaper.live.clear()
    assert run_reaper.strays(PROCS, final=True) == {200, 210, 201, 202, 300, 301, 302}


def test_a_sender_is_traced_to_its_unit_by_parent_or_session(run_reaper: Reaper) -> None:
    assert run_reaper.unit_of(210, PROCS) == 200
    assert run_reaper.unit_of(300, PROCS) == 200  # orphaned, but still in its session
    assert run_reaper.unit_of(301, PROCS) is None
    assert is_descendant(PROCS, 302, ME) and not is_descendant(PROCS, ME, 302)


def test_the_process_table_sees_this_process_and_its_parent() -> None:
    found = process_table()
    me = found[os.getpid()]
    assert me.ppid == os.getppid() and me.uid == os.getuid() and me.state in "RS"


DAEMON = textwrap.dedent("""
    import os, sys, time
    from torchvet.engine import reaper
    assert reaper.become_subreaper()
    pid_r, pid_w = os.pipe()
    child = os.fork()
    if child == 0:
        os.setsid()
        if os.fork():
            os._exit(0)
        os.write(pid_w, str(os.getpid()).encode())
        while True:
            time.sleep(1)
    os.waitpid(child, 0)
    daemon = int(os.read(pid_r, 32))
    time.sleep(0.1)  # the daemon's parent is gone: it is ours now (subreaper)
    before = reaper.read_proc(daemon)
    killed = reaper.Reaper().sweep(final=True)
    after = reaper.read_proc(daemon)
    print(before.ppid == os.getpid(), killed >= 1, after is None)
""")


def test_a_subreaper_kills_the_double_forked_setsid_daemon_a_child_left() -> None:
    result = subprocess.run([sys.executable, "-c", DAEMON], capture_output=True, text=True,
                            timeout=60)
    assert result.stdout.split() == ["True", "True", "True"], result.stderr
