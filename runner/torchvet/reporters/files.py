"""Report files, written and read without trusting what is already on disk.

A repository under test may commit a symlink where a report goes (``torchvet-junit.xml ->
~/.bashrc``) or leave a FIFO or a huge file where one is read back. So a report is
written to a fresh temporary file in the target's directory (``O_CREAT|O_EXCL``, which
never follows a symlink) and renamed over the target: a symlink there is replaced, never
followed. A report is read back only from a regular file, at most ``limit`` bytes, and
without following a symlink when the caller says so.
"""

from __future__ import annotations

import contextlib
import os
import stat
import tempfile
from pathlib import Path

READ_LIMIT = 256 * 1024 * 1024  # bytes of a report read back


class ReportFileError(OSError):
    """A report path that cannot be written or read safely; the message says why."""


def write_text(path: str | os.PathLike[str], text: str, *, mode: int = 0o644) -> Path:
    """Write ``text`` (UTF-8) to ``path`` by create-temp-then-rename in its directory
    (created when missing); returns the path written."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, temp = tempfile.mkstemp(prefix=f".{target.name[:64]}.", suffix=".tmp",
                                dir=target.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as handle:
            handle.write(text)
            os.fchmod(handle.fileno(), mode)
        os.replace(temp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temp)
        raise
    return target


def read_bytes(path: str | os.PathLike[str], *, limit: int = READ_LIMIT,
               follow_symlinks: bool = True, owner: int | None = None) -> bytes:
    """The bytes of the regular file at ``path`` (never a FIFO, device or directory), at
    most ``limit``; with ``follow_symlinks=False`` a symlink at ``path`` is refused, and
    with ``owner`` a file another uid owns, or with other hard links, is refused."""
    flags = os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)
    if not follow_symlinks:
        flags |= getattr(os, "O_NOFOLLOW", 0)
    try:
        fd = os.open(path, flags)
    except OSError as exc:
        if not follow_symlinks and os.path.islink(path):
            raise ReportFileError(f"{path} is a symlink; refusing to follow it") from None
        raise ReportFileError(f"{path}: cannot read it ({exc.strerror or exc})") from None
    with os.fdopen(fd, "rb") as handle:
        info = os.fstat(handle.fileno())
        if not stat.S_ISREG(info.st_mode):
            raise ReportFileError(f"{path} is not a regular file")
        if owner is not None and (info.st_uid != owner or info.st_nlink != 1):
            raise ReportFileError(f"{path} is not a file the run wrote (owner "
                                  f"{info.st_uid}, {info.st_nlink} links)")
        if info.st_size > limit:
            raise ReportFileError(f"{path} holds {info.st_size} bytes, more than the "
                                  f"{limit} a report may")
        data = handle.read(limit + 1)
    if len(data) > limit:
        raise ReportFileError(f"{path} holds more than the {limit} bytes a report may")
    return data
