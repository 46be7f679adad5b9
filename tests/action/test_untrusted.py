"""Running the repository's code inside the action: the environment it gets, the relay
of its output inside stop-commands, the process group, and cancellation."""

from __future__ import annotations

import io
import os
import signal
import sys
import threading
import time
from pathlib import Path

import pytest

from tests.helpers.workflow import replay_log
from torchvet.action.sandbox import Account, processes_of
from torchvet.action.untrusted import (
    Cancellation,
    Console,
    run_untrusted,
    user_code_env,
    without_tokens,
)


def test_user_code_gets_no_tokens_file_commands_or_inputs() -> None:
    env = {
        "GITHUB_TOKEN": "t1", "GH_TOKEN": "t2", "ACTIONS_RUNTIME_TOKEN": "t3",
        "ACTIONS_ID_TOKEN_REQUEST_TOKEN": "t4", "ACTIONS_ID_TOKEN_REQUEST_URL": "u",
        "actions_runtime_token": "t5", "GITHUB_OUTPUT": "/f/o", "GITHUB_STEP_SUMMARY": "/f/s",
        "GITHUB_ENV": "/f/e", "GITHUB_PATH": "/f/p", "GITHUB_STATE": "/f/st",
        "INPUT_PATH": ".",
        "GITHUB_WORKSPACE": "/github/workspace", "GITHUB_ACTIONS": "true", "HOME": "/h",
        "PATH": "/usr/bin", "ACTIONS_CACHE_URL": "https://cache", "HF_TOKEN": "hf",
    }
    clean = user_code_env(env, EXTRA="1")
    assert clean == {"GITHUB_WORKSPACE": "/github/workspace", "GITHUB_ACTIONS": "true",
                     "HOME": "/h", "PATH": "/usr/bin", "ACTIONS_CACHE_URL": "https://cache",
                     "HF_TOKEN": "hf", "EXTRA": "1"}
    # the entrypoint itself keeps the file-command paths, never the tokens
    own = without_tokens(env)
    assert "GITHUB_OUTPUT" in own and "INPUT_PATH" in own
    assert not any("TOKEN" in k.upper() for k in own if k not in ("HF_TOKEN",))


def test_untrusted_output_stays_inside_the_stop_commands_block(tmp_path: Path) -> None:
    """Commands printed by the child never reach the log outside the block; the block
    closes on a line of its own; a grandchild left running is killed with the group."""
    script = tmp_path / "noisy.py"
    script.write_text(
        "import subprocess, sys\n"
        "print('::set-output name=conclusion::success', flush=True)\n"
        "print('::error::fake', file=sys.stderr, flush=True)\n"
        "print('::add-mask::x\\r::error::after a carriage return', flush=True)\n"
        "late = subprocess.Popen([sys.executable, '-c', 'import signal\\n'\n"
        "    'signal.pause()\\nprint(\"::error::late\", flush=True)'])\n"
        f"open({str(tmp_path / 'pid')!r}, 'w').write(str(late.pid))\n"
        "sys.stdout.write('no newline ::error::x')\n"
        "sys.stdout.flush()\n"
        "sys.exit(3)\n", encoding="utf-8")
    stream = io.StringIO()
    outcome = run_untrusted(Console(stream), "Noisy: ::error::in the title",
                            [sys.executable, str(script)], cwd=tmp_path,
                            env={"PATH": "/usr/bin"})
    log = stream.getvalue()
    assert outcome.returncode == 3
    assert "::error::fake" in log and "no newline ::error::x" in outcome.tail[-1]
    commands = replay_log(log)
    assert [(name, data) for name, _, data in commands] == [
        ("group", "Noisy: ::error::in the title"), ("endgroup", "")]
    lines = log.splitlines()
    assert lines[1].startswith("::stop-commands::") and lines[-1] == "::endgroup::"
    assert lines[-2] == "::" + lines[1].split("::")[2] + "::"
    assert_ends(int((tmp_path / "pid").read_text()))


def assert_ends(pid: int) -> None:
    """The process ``pid`` is gone (or a zombie its new parent has yet to reap)."""
    stat = Path(f"/proc/{pid}/stat")
    for _ in range(200):
        try:
            state = stat.read_text().rpartition(")")[2].split()[0]
        except OSError:
            return
        if state in ("Z", "X"):
            return
        time.sleep(0.05)  # SIGKILL was sent; the kernel needs a moment to finish it
    raise AssertionError(f"process {pid} still runs: {stat.read_text()}")


def test_a_program_that_cannot_start_closes_its_block(tmp_path: Path) -> None:
    stream = io.StringIO()
    outcome = run_untrusted(Console(stream), "x", ["/nonexistent/tool"], cwd=tmp_path,
                            env={})
    assert outcome.returncode == 127
    assert [c[0] for c in replay_log(stream.getvalue())] == ["group", "endgroup"]


class Watch(io.StringIO):
    """A stream that says when a line holding ``text`` was written."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.text = text
        self.seen = threading.Event()

    def write(self, s: str) -> int:
        if self.text in s:
            self.seen.set()
        return super().write(s)


def test_a_cancellation_reaches_the_running_program_and_is_remembered(tmp_path: Path
                                                                      ) -> None:
    """`docker stop` sends SIGTERM to the entrypoint: the program (torchvet run) gets it
    and can write what finished; later steps see it was cancelled."""
    script = tmp_path / "waits.py"
    script.write_text(
        "import os, signal\n"
        "def stop(signum, frame):\n"
        "    os.write(1, f'stopping on {signum}\\n'.encode())\n"
        "    os._exit(130)\n"
        "signal.signal(signal.SIGTERM, stop)\n"
        "os.write(1, b'ready\\n')\n"
        "while True:\n"
        "    signal.pause()\n", encoding="utf-8")
    stream = Watch("ready")
    cancellation = Cancellation()
    outcomes = []
    runner = threading.Thread(target=lambda: outcomes.append(run_untrusted(
        Console(stream), "waits", [sys.executable, str(script)], cwd=tmp_path, env={},
        cancellation=cancellation)))
    runner.start()
    try:
        assert stream.seen.wait(60), stream.getvalue()
        assert not cancellation.requested and len(cancellation.running) == 1
        cancellation.forward(signal.SIGTERM)
    finally:
        runner.join(60)
        for proc in cancellation.running:
            proc.kill()
    [outcome] = outcomes
    assert outcome.returncode == 130
    assert outcome.tail == ["ready", f"stopping on {int(signal.SIGTERM)}"]
    assert cancellation.requested and cancellation.running == []


def test_the_log_keeps_at_most_the_limit_then_the_last_lines(tmp_path: Path) -> None:
    script = ("import sys\nfor i in range(3000):\n    print(f'line {i} ' + 'x' * 1000)\n"
              "print('the last line')\n")
    stream = io.StringIO()
    outcome = run_untrusted(Console(stream), "loud", [sys.executable, "-c", script],
                            cwd=tmp_path, env={}, limit=100_000)
    log = stream.getvalue()
    assert outcome.returncode == 0 and len(log) < 150_000
    assert "more bytes of output left out of the log; the last lines follow]" in log
    assert log.splitlines()[-3] == "the last line"  # then the token and endgroup
    assert [c[0] for c in replay_log(log)] == ["group", "endgroup"]


@pytest.mark.skipif(os.geteuid() != 0, reason="running as another user needs root")
def test_as_the_account_nothing_it_started_outlives_the_block(tmp_path: Path) -> None:
    """A setsid daemon left by the step keeps writing into the relayed pipe: every
    process of the account is killed before the block closes, so the block's end is the
    last thing the log holds from it."""
    account = Account("stranger", 10097, 10097)
    leave = ("(setsid sh -c 'while :; do echo ::error::from the daemon; sleep 0.01; done' &)"
             "; sleep 0.3; echo started")
    stream = io.StringIO()
    outcome = run_untrusted(Console(stream), "daemon", ["sh", "-c", leave], cwd=Path("/"),
                            env={"PATH": "/usr/bin:/bin"}, account=account)
    log = stream.getvalue().splitlines()
    assert outcome.returncode == 0 and "started" in log
    assert "::error::from the daemon" in log  # it ran, inside the block
    assert log[-1] == "::endgroup::" and log[-2] == f"::{log[1].split('::')[2]}::"
    assert processes_of(account.uid) == []
    assert [c[0] for c in replay_log(stream.getvalue())] == ["group", "endgroup"]
