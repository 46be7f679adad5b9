"""Signals while units run are judged by their sender: a unit's own signal is ignored and
its unit stopped; the kernel's (Ctrl-C), an outside process's, or the named canceller's
stop the run as before."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import textwrap

import pytest

from torchvet.engine.signals import SI_KERNEL, SI_TKILL, SI_USER, honoured, trusted_canceller

OURS = {4242}


def ours(pid: int) -> bool:
    return pid in OURS


@pytest.mark.parametrize(("code", "sender", "trusted", "expected"), [
    (SI_KERNEL, 0, None, True),  # Ctrl-C at the terminal
    (SI_USER, 77, None, True),  # the CI runner, `timeout`, a user's kill
    (SI_TKILL, 77, None, True),
    (SI_USER, 4242, None, False),  # a unit's process
    (-1, 77, None, False),  # sigqueue: the sender pid is whatever the caller wrote
    (SI_USER, 1, 1, True),  # the action's entrypoint, the named canceller
    (SI_USER, 77, 1, False),  # anyone else, where a canceller is named
    (-1, 1, 1, False),  # a forged canceller
    (SI_KERNEL, 0, 1, True),
])
def test_who_may_stop_the_run(code: int, sender: int, trusted: int | None,
                              expected: bool) -> None:
    assert honoured(code, sender, trusted=trusted, is_ours=ours) is expected


def test_the_canceller_is_read_from_the_environment() -> None:
    assert trusted_canceller({"TORCHVET_CANCEL_FROM_PID": "1"}) == 1
    assert trusted_canceller({"TORCHVET_CANCEL_FROM_PID": "x"}) is None
    assert trusted_canceller({}) is None


# A run process in miniature: a tracked "worker" that signals its parent, and then a
# signal from outside (this test) that must still interrupt.
RUN = textwrap.dedent("""
    import os, signal, subprocess, sys, time
    from torchvet.engine import reaper
    from torchvet.engine.signals import SignalJudge
    reaper.become_subreaper()
    tracker = reaper.Reaper()
    worker = subprocess.Popen([sys.executable, "-c",
        "import os, signal, time\\n"
        "os.kill(os.getppid(), signal.SIGTERM)\\n"
        "os.kill(os.getppid(), signal.SIGINT)\\n"
        "time.sleep(120)"], start_new_session=True)
    tracker.track(worker.pid)
    judge = SignalJudge(tracker, stream=sys.stdout)
    try:
        with judge:
            code = worker.wait(timeout=60)  # stopped by the judge
            print("worker", code, repr(tracker.blamed.get(worker.pid, "")), flush=True)
            print("ready", flush=True)
            time.sleep(60)  # until the test's SIGTERM
        print("not interrupted")
    except KeyboardInterrupt:
        print("interrupted by", signal.Signals(judge.honoured).name)
""")


def test_a_units_signal_stops_the_unit_and_an_outside_one_stops_the_run() -> None:
    proc = subprocess.Popen([sys.executable, "-c", RUN], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    lines = []
    for line in proc.stdout:
        lines.append(line.rstrip("\n"))
        if line.startswith("ready"):
            break
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=60)
    lines += out.splitlines()
    assert proc.returncode == 0, err
    worker = next(line for line in lines if line.startswith("worker"))
    # the first signal judged names it (SIGINT when both were pending: lower numbers first)
    assert re.match(rf"worker {-signal.SIGKILL} 'sent SIG(TERM|INT) to torchvet", worker), lines
    assert "a unit cannot stop the run" in worker
    assert any(line.startswith("torchvet: ignored SIGTERM from process") for line in lines)
    assert lines[-1] == "interrupted by SIGTERM"
