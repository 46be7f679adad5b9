"""Who runs the project's code in the action's container, and what it cannot reach.

The entrypoint (PID 1) stays root; every step that runs code from the repository (the
install, ``install-command``, ``torchvet run`` and its workers) runs as the image's
``torchvet`` account: no supplementary group (so not the Docker socket's), umask 077, its
own HOME and TMPDIR. Around those steps the entrypoint

- makes itself not dumpable and sets no-new-privileges (inherited: a setuid binary
  grants nothing), so the account cannot read ``/proc/1/environ`` or ``/proc/1/fd``;
- hides the runner's mounts (the workspace, HOME, the workflow and file-command
  directories): their mode loses its bits for "other" until the last step ended;
- refuses to start when the Docker socket is open to the account;
- after each step kills every process of the account (``kill(-1, SIGKILL)`` from a
  process of that uid, atomic against forks, until ``/proc`` shows none), so a daemon
  outlives no step.

Without root or without the account (tests, ``docker run --user``) the steps run as the
current user, as before this module existed: :func:`find_account` returns None.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import signal
import stat
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..engine import prctl
from ..engine.reaper import process_table

ACCOUNT = "torchvet"
DOCKER_SOCKETS = ("/var/run/docker.sock", "/run/docker.sock")
KILL_ROUNDS = 100


@dataclass(frozen=True)
class Account:
    """The unprivileged user the project's code runs as."""

    name: str
    uid: int
    gid: int

    def popen_kwargs(self) -> dict[str, Any]:
        """``subprocess.Popen`` arguments that run a program as this account."""
        return {"user": self.uid, "group": self.gid, "extra_groups": [], "umask": 0o077}


def find_account(name: str = ACCOUNT) -> Account | None:
    """The account to drop to: only where we are root and the image created it."""
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        return None
    try:
        entry = pwd.getpwnam(name)
    except KeyError:
        return None
    if entry.pw_uid == 0:
        return None
    return Account(name, entry.pw_uid, entry.pw_gid)


def harden_self() -> None:
    """PID 1 before anything else: not dumpable, and nothing it starts gains privileges."""
    prctl.set_no_new_privs()
    prctl.set_dumpable(False)


def open_to(path: str | os.PathLike[str], account: Account, bits: int) -> bool:
    """Whether ``account`` has the permission ``bits`` (4 read, 2 write, 1 exec) on
    ``path`` by its mode (the account has no supplementary group)."""
    try:
        info = os.stat(path)
    except OSError:
        return False
    if info.st_uid == account.uid:
        return bool(info.st_mode & (bits << 6))
    if info.st_gid == account.gid:
        return bool(info.st_mode & (bits << 3))
    return bool(info.st_mode & bits)


def exposed_sockets(account: Account, paths: Iterable[str] = DOCKER_SOCKETS) -> list[str]:
    """The Docker sockets the account could connect to (write permission)."""
    return [p for p in paths if stat.S_ISSOCK(_mode(p)) and open_to(p, account, 2)]


def _mode(path: str) -> int:
    try:
        return os.stat(path).st_mode
    except OSError:
        return 0


def runner_mounts(env: dict[str, str]) -> list[Path]:
    """The directories the runner mounts that the account must not reach: the workspace,
    HOME, the workflow directory (event.json) and the file-command directory."""
    found: list[Path] = []
    for name in ("GITHUB_WORKSPACE", "HOME"):
        if env.get(name):
            found.append(Path(env[name]))
    for name in ("GITHUB_EVENT_PATH", "GITHUB_OUTPUT", "GITHUB_STEP_SUMMARY", "GITHUB_ENV",
                 "GITHUB_PATH", "GITHUB_STATE"):
        if env.get(name):
            found.append(Path(env[name]).parent)
    return list(dict.fromkeys(found))


NEEDED = ("/usr", "/etc", "/opt", "/tmp", "/bin", "/lib", "/dev", "/proc")


@contextlib.contextmanager
def hidden(paths: Iterable[Path], keep: Iterable[Path] = ()) -> Iterator[list[Path]]:
    """Take the "other" permission bits off each directory of ``paths`` while the block
    runs (the account is "other" to the runner's files), and put them back after. A path
    that holds something the account needs (``/``, ``/usr``, the scratch) is left as
    it is."""
    needed = [Path(p) for p in NEEDED] + [Path(p) for p in keep]
    changed: list[tuple[Path, int]] = []
    try:
        for path in paths:
            try:
                info = os.lstat(path)
            except OSError:
                continue
            real = Path(os.path.realpath(path))
            if (not stat.S_ISDIR(info.st_mode) or real == Path("/")
                    or any(n == real or real in n.parents for n in needed)):
                continue
            mode = stat.S_IMODE(info.st_mode)
            if mode & 0o007:
                with contextlib.suppress(OSError):
                    os.chmod(path, mode & ~0o007)
                    changed.append((Path(path), mode))
        yield [p for p, _ in changed]
    finally:
        for path, mode in reversed(changed):
            with contextlib.suppress(OSError):
                os.chmod(path, mode)


def processes_of(uid: int) -> list[int]:
    """The live (not zombie) processes whose real uid is ``uid``."""
    return [p.pid for p in process_table().values()
            if p.uid == uid and p.state not in ("Z", "X")]


def _kill_as(account: Account) -> None:
    """``kill(-1, SIGKILL)`` from a child that is ``account``: the kernel signals every
    process of that uid at once (a process forking meanwhile cannot escape it)."""
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        try:
            os.setgroups([])
            os.setgid(account.gid)
            os.setuid(account.uid)
            with contextlib.suppress(ProcessLookupError):
                os.kill(-1, signal.SIGKILL)
        finally:
            os._exit(0)
    os.waitpid(pid, 0)


def reap_children() -> None:
    """Collect our zombie children (as PID 1, orphans of the account's processes are
    re-parented to us); only zombies, never a child still running."""
    me = os.getpid()
    for proc in process_table().values():
        if proc.ppid == me and proc.state == "Z":
            with contextlib.suppress(ChildProcessError, OSError):
                os.waitpid(proc.pid, os.WNOHANG)


def kill_all(account: Account) -> int:
    """Kill every process of ``account`` and wait until none is left; returns how many
    were alive at first."""
    first = len(processes_of(account.uid))
    for _ in range(KILL_ROUNDS):
        if not processes_of(account.uid):
            break
        _kill_as(account)
        reap_children()
        time.sleep(0.01)
    reap_children()
    return first


@dataclass(frozen=True)
class Scratch:
    """The entrypoint's scratch tree: root-owned (0711), with the account's own
    directories inside (which it cannot swap, since it cannot write the root)."""

    root: Path
    home: Path
    tmp: Path
    out: Path
    venv: Path
    workspace: Path

    @classmethod
    def create(cls, root: Path, account: Account | None) -> Scratch:
        os.chmod(root, 0o711)
        made = cls(root, root / "home", root / "tmp", root / "out", root / "venv",
                   root / "workspace")
        for path in (made.home, made.tmp, made.out, made.venv):
            path.mkdir(mode=0o700)
            if account is not None:
                os.chown(path, account.uid, account.gid)
        return made
