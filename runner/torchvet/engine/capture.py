"""Capture files stay small on disk, whatever a unit prints.

A worker's stdout and stderr go to a file in the run's scratch directory (the worker
appends to it). A unit that prints without end would fill the disk before its timeout,
so a thread watches the directory and, when a file passes :data:`DISK_LIMIT`, keeps its
last bytes in memory and truncates it (the worker's ``O_APPEND`` writes carry on at the
new end). :func:`read_tail` gives the report the last :data:`TAIL` bytes and says how
many went before them.
"""

from __future__ import annotations

import contextlib
import os
import threading
from pathlib import Path
from types import TracebackType

DISK_LIMIT = 8 * 1024 * 1024  # bytes a capture file may reach before it is truncated
TAIL = 64 * 1024  # bytes of output a report keeps
POLL = 0.2  # seconds between two looks at the capture files
_left_out: dict[str, int] = {}  # path -> bytes truncated away
_kept: dict[str, bytes] = {}  # path -> the tail saved at the last truncation


def truncate(path: str, limit: int = DISK_LIMIT) -> int:
    """Truncate ``path`` when it holds more than ``limit`` bytes, keeping its tail for
    :func:`read_tail`; returns the bytes left out."""
    try:
        fd = os.open(path, os.O_RDWR | getattr(os, "O_NOFOLLOW", 0))
    except OSError:
        return 0
    try:
        size = os.fstat(fd).st_size
        if size <= limit:
            return 0
        tail = os.pread(fd, TAIL, max(0, size - TAIL))
        os.ftruncate(fd, 0)
    finally:
        os.close(fd)
    kept = (_kept.get(path, b"") + tail)[-TAIL:]
    gone = size + len(_kept.get(path, b"")) - len(kept)
    _kept[path] = kept
    _left_out[path] = _left_out.get(path, 0) + gone
    return gone


def read_tail(path: str, limit: int = TAIL) -> str:
    """The last ``limit`` bytes a unit printed, after a "… N bytes left out" line when
    there were more; forgets the file's truncation record."""
    try:
        with open(path, "rb") as handle:
            data = handle.read()
    except OSError:
        data = b""
    data = _kept.pop(path, b"") + data
    left_out = _left_out.pop(path, 0)
    if len(data) > limit:
        left_out += len(data) - limit
        data = data[-limit:]
    text = data.decode("utf-8", errors="replace")
    return f"[… {left_out} bytes left out …]\n{text}" if left_out else text


class CaptureLimiter:
    """A thread that truncates the oversized capture files of ``directory`` while the
    ``with`` block runs."""

    def __init__(self, directory: Path, limit: int = DISK_LIMIT, poll: float = POLL) -> None:
        self.directory = directory
        self.limit = limit
        self.poll = poll
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="torchvet-capture",
                                        daemon=True)

    def __enter__(self) -> CaptureLimiter:
        self._thread.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._stop.set()
        self._thread.join()

    def check(self) -> None:
        with contextlib.suppress(OSError):
            for entry in os.scandir(self.directory):
                if entry.name.endswith(".out") and entry.stat(
                        follow_symlinks=False).st_size > self.limit:
                    truncate(entry.path, self.limit)

    def _watch(self) -> None:
        while not self._stop.wait(self.poll):
            self.check()
