"""Running code from the repository under test (pip builds, ``install-command``, the
checks) inside the action.

Each program runs in its own process group, with an environment free of GitHub tokens,
file-command paths and inputs, and its output is relayed line by line inside a
``::group::`` and a ``::stop-commands::<random token>`` block: it cannot issue workflow
commands. The block closes only after the last relayed line; the group is killed when
the program ends, so a leftover child prints nothing afterwards. A cancelled job
(``docker stop`` sends SIGTERM to PID 1) is passed on to the running program.
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

from . import workflow


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
                  cancellation: Cancellation = CANCELLATION) -> Outcome:
    """Run ``argv`` in its own process group and relay its output inside a group and a
    stop-commands block; the block closes only after the last relayed line, and nothing
    the process (or a leftover child) prints afterwards reaches stdout."""
    token = secrets.token_hex(16)
    console.command("group", title)
    console.line(f"::stop-commands::{token}")
    tail: deque[str] = deque(maxlen=tail_lines)
    relaying = threading.Event()
    relaying.set()
    try:
        proc = subprocess.Popen(list(argv), cwd=cwd, env=dict(env), stdin=subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                start_new_session=True)
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
                if relaying.is_set():
                    console.write_locked(text)

    reader = threading.Thread(target=pump, name="relay", daemon=True)
    reader.start()
    cancellation.running.append(proc)
    try:
        returncode = proc.wait()
    finally:
        cancellation.running.remove(proc)
        kill_group(proc.pid)
        reader.join(timeout=10)
        with console.lock:
            relaying.clear()
            console.write_locked(f"::{token}::")
        console.command("endgroup")
    return Outcome(returncode, list(tail))


def kill_group(pgid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)
