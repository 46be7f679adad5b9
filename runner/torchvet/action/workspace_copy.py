"""The copy of the workspace the project's code works in.

Later steps of the job run what is in the workspace, so the account that runs the
project's code never gets to write it: it gets a copy, made by the entrypoint and owned
by the account (pip's ``build/`` and ``*.egg-info``, the reports, anything a hostile
factory plants, all stay in the copy). The copy holds what the account could read in the
workspace anyway (entries readable by "other"; a file a previous step left private stays
out), symlinks as symlinks, no FIFO or device, and no credentials: ``actions/checkout``
leaves the job's token in ``.git/config`` (``http.<url>.extraheader``), which is dropped.
"""

from __future__ import annotations

import contextlib
import os
import re
import stat
import time
from dataclasses import dataclass
from pathlib import Path

from .sandbox import Account

_CREDENTIAL = re.compile(r"^\s*(extraheader|sslkey|sslcert|cookiefile)\s*=.*$",
                         re.IGNORECASE | re.MULTILINE)


@dataclass
class CopyStats:
    files: int = 0
    bytes: int = 0
    skipped: int = 0  # private or special entries left out
    seconds: float = 0.0

    def describe(self) -> str:
        left = f", {self.skipped} private or special entries left out" if self.skipped else ""
        return (f"{self.files} files, {self.bytes / 1e6:.1f} MB in {self.seconds:.2f} s"
                f"{left}")


def _readable_by_others(info: os.stat_result) -> bool:
    need = 0o005 if stat.S_ISDIR(info.st_mode) else 0o004
    return info.st_mode & need == need


def _copy_file(source: str, target: str, info: os.stat_result) -> int:
    flags = os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOFOLLOW", 0)
    src = os.open(source, flags)
    try:
        if not stat.S_ISREG(os.fstat(src).st_mode):
            raise OSError(f"{source} is not a regular file")
        dst = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW,
                      stat.S_IMODE(info.st_mode) & 0o755 | 0o600)
        try:
            copied = 0
            while True:
                sent = os.sendfile(dst, src, copied, 1 << 24)
                if sent == 0:
                    return copied
                copied += sent
        finally:
            os.close(dst)
    finally:
        os.close(src)


def copy_workspace(source: Path, target: Path, account: Account | None) -> CopyStats:
    """Copy ``source`` into the new directory ``target`` (owned by ``account``)."""
    started = time.monotonic()
    stats = CopyStats()
    target.mkdir(mode=0o700)
    owned = [target]
    todo = [(str(source), str(target))]
    while todo:
        src_dir, dst_dir = todo.pop()
        try:
            entries = list(os.scandir(src_dir))
        except OSError:
            stats.skipped += 1
            continue
        for entry in entries:
            dst = os.path.join(dst_dir, entry.name)
            try:
                info = entry.stat(follow_symlinks=False)
                if stat.S_ISLNK(info.st_mode):
                    os.symlink(os.readlink(entry.path), dst)
                elif not _readable_by_others(info):
                    stats.skipped += 1
                    continue
                elif stat.S_ISDIR(info.st_mode):
                    os.mkdir(dst, 0o755)
                    todo.append((entry.path, dst))
                elif stat.S_ISREG(info.st_mode):
                    stats.bytes += _copy_file(entry.path, dst, info)
                    stats.files += 1
                else:
                    stats.skipped += 1
                    continue
            except OSError:
                stats.skipped += 1
                continue
            owned.append(Path(dst))
    scrub_git_credentials(target / ".git")
    if account is not None:
        for path in owned:
            with contextlib.suppress(OSError):
                os.lchown(path, account.uid, account.gid)
    stats.seconds = time.monotonic() - started
    return stats


def scrub_git_credentials(git_dir: Path) -> int:
    """Drop credential lines (``extraheader`` & co.) from the config files of a copied
    ``.git`` (its submodules' included); returns how many files changed."""
    if git_dir.is_symlink() or not git_dir.is_dir():
        return 0
    changed = 0
    configs = [git_dir / "config", *git_dir.glob("modules/**/config")]
    for config in configs:
        if config.is_symlink() or not config.is_file():
            continue
        text = config.read_text(encoding="utf-8", errors="surrogateescape")
        clean = _CREDENTIAL.sub("", text)
        if clean != text:
            config.write_text(clean, encoding="utf-8", errors="surrogateescape")
            changed += 1
    return changed
