"""Running code from the repository under test (pip builds, ``install-command``, the
checks) inside the action.

Each program runs as the sandbox's account (:mod:`.sandbox`; the current user where
there is none) in its own process group, with an environment free of GitHub tokens,
file-command paths and inputs, and its output is relayed line by line inside a
``::group::`` and a ``::stop-commands::<random token>`` block: it cannot issue workflow
commands. When the program ends every process of the account is killed (only its group
without one), then the relay drains what they wrote, and only then the block closes:
nothing they start prints after it. At most :data:`RELAY_LIMIT` bytes are relayed per
step. A cancelled job (``docker stop`` sends SIGTERM to PID 1) is passed on to the
running program.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import subprocess
import sys
import threading
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from ..github import workflow
from .sandbox import Account, kill_all

RELAY_LIMIT = 8 * 1024 * 1024  # bytes of a step's output shown in the log


def without_tokens(env: Mapping[str, str]) -> dict[str, str]:
    """``env`` less the tokens (torchvet's own environment keeps the file commands)."""
    return {k: v for k, v in env.items() if not workflow.is_token(k)}


def user_code_env(env: Mapping[str, str], **extra: str) -> dict[str, str]:
    """The environment of a process that runs code from the repository: no tokens, no
    file-command paths (so it cannot write step outputs or the summary), no inputs."""
    clean = {k: v for k, v in env.items()
             if not workflow.is_withheld(k) and not k.startswith("INPUT_")}
    clean.update(extra)
    return clean


class Console:
    """Our stdout: workflow commands and relayed output, one whole line at a time."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stdout
        self.lock = threading.Lock()

    def line(self, text: str = "") -> None:
        with self.lock:
            self.write_locked(text)

    def write_locked(self, text: str) -> None:
        """Write a line; the caller holds :attr:`lock`."""
        self.stream.write(text + "\n")
        self.stream.flush()

    def command(self, name: str, message: str = "", **properties: str | int | None) -> None:
        self.line(workflow.command(name, message, **properties))

    def error(self, title: str, message: str) -> None:
        self.command("error", message, title=f"torchvet: {title}")

    def warning(self, title: str, message: str) -> None:
        self.command("warning", message, title=f"torchvet: {title}")


class Cancellation:
    """SIGTERM or SIGINT to this process (as PID 1 it would otherwise ignore them): passed
    on to the running program, so torchvet writes what finished and marks the rest
    cancelled, and remembered, so no later step starts."""

    def __init__(self) -> None:
        self.running: list[subprocess.Popen[bytes]] = []
        self.signals: list[int] = []

    @property
    def requested(self) -> bool:
        return bool(self.signals)

    def forward(self, signum: int, frame: Any = None) -> None:
        for proc in list(self.running):
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signum)
        self.signals.append(signum)

    def install(self) -> None:
        signal.signal(signal.SIGTERM, self.forward)
        signal.signal(signal.SIGINT, self.forward)


CANCELLATION = Cancellation()  # signal handlers are per process: one instance


@dataclass
class Outcome:
    returncode: int
    tail: list[str]


def run_untrusted(console: Console, title: str, argv: Sequence[str], *, cwd: Path,
                  env: Mapping[str, str], tail_lines: int = 40,
                  cancellation: Cancellation = CANCELLATION,
                  account: Account | None = None, limit: int = RELAY_LIMIT) -> Outcome:
    """Run ``argv`` (as ``account``) in its own process group and relay its output inside
    a group and a stop-commands block; the block closes only after every process it left
    is dead and the last relayed line, and nothing printed afterwards reaches stdout."""
    token = secrets.token_hex(16)
    console.command("group", title)
    console.line(f"::stop-commands::{token}")
    tail: deque[str] = deque(maxlen=tail_lines)
    relaying = threading.Event()
    relaying.set()
    relayed = [0, 0]  # bytes shown, bytes left out
    as_account = account.popen_kwargs() if account is not None else {}
    try:
        proc = subprocess.Popen(list(argv), cwd=cwd, env=dict(env), stdin=subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                start_new_session=True, **as_account)
    except OSError as exc:
        console.line(f"cannot start {argv[0]}: {exc}")
        console.line(f"::{token}::")
        console.command("endgroup")
        return Outcome(127, [f"cannot start {argv[0]}: {exc}"])
    assert proc.stdout is not None
    stdout = proc.stdout

    def pump() -> None:
        while True:
            chunk = stdout.readline(1 << 16)
            if not chunk:
                return
            text = chunk.decode("utf-8", "replace").rstrip("\r\n")
            tail.append(text)
            with console.lock:
                if relayed[0] + len(chunk) > limit:
                    relayed[1] += len(chunk)
                elif relaying.is_set():
                    relayed[0] += len(chunk)
                    console.write_locked(text)

    reader = threading.Thread(target=pump, name="relay", daemon=True)
    reader.start()
    cancellation.running.append(proc)
    try:
        returncode = proc.wait()
    finally:
        cancellation.running.remove(proc)
        kill_group(proc.pid)
        if account is not None:
            kill_all(account)  # every writer of the pipe is gone: the reader sees its end
        reader.join(timeout=30)  # a straggler the kill missed prints nothing after the token
        with console.lock:
            relaying.clear()
            if relayed[1]:
                console.write_locked(f"[torchvet: {relayed[1]} more bytes of output left "
                                     f"out of the log; the last lines follow]")
                for text in list(tail)[-20:]:
                    console.write_locked(text)
            console.write_locked(f"::{token}::")
        console.command("endgroup")
    return Outcome(returncode, list(tail))


def kill_group(pgid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)
