"""The sandbox around the project's code in the action: permissions by mode, the runner's
mounts hidden and restored, the Docker socket check, and every process of the account
killed. The parts that switch users need root (the image's entrypoint is root); they
skip elsewhere, and the Docker tests run them in the image."""

from __future__ import annotations

import os
import socket
import stat
import subprocess
from pathlib import Path

import pytest

from torchvet.action import sandbox
from torchvet.action.sandbox import Account, Scratch

STRANGER = Account("stranger", 10097, 10097)  # no passwd entry needed to run as it
needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="switching users needs root")


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_permissions_follow_owner_group_other(tmp_path: Path) -> None:
    path = tmp_path / "f"
    path.touch()
    path.chmod(0o640)
    assert not sandbox.open_to(path, STRANGER, 4)
    path.chmod(0o644)
    assert sandbox.open_to(path, STRANGER, 4) and not sandbox.open_to(path, STRANGER, 2)
    assert not sandbox.open_to(tmp_path / "missing", STRANGER, 4)


def test_an_open_docker_socket_is_found(tmp_path: Path) -> None:
    path = tmp_path / "docker.sock"
    server = socket.socket(socket.AF_UNIX)
    server.bind(str(path))
    try:
        path.chmod(0o666)
        assert sandbox.exposed_sockets(STRANGER, [str(path)]) == [str(path)]
        path.chmod(0o660)  # root:docker 660, as on GitHub's runners
        assert sandbox.exposed_sockets(STRANGER, [str(path)]) == []
        assert sandbox.exposed_sockets(STRANGER, [str(tmp_path)]) == []  # not a socket
    finally:
        server.close()


def test_the_runner_mounts_are_named_by_the_environment() -> None:
    env = {"GITHUB_WORKSPACE": "/github/workspace", "HOME": "/github/home",
           "GITHUB_EVENT_PATH": "/github/workflow/event.json",
           "GITHUB_OUTPUT": "/github/file_commands/set_output_1",
           "GITHUB_ENV": "/github/file_commands/set_env_1"}
    assert sandbox.runner_mounts(env) == [
        Path("/github/workspace"), Path("/github/home"), Path("/github/workflow"),
        Path("/github/file_commands")]


def test_hidden_takes_the_other_bits_off_and_puts_them_back(tmp_path: Path) -> None:
    mount, scratch_parent = tmp_path / "mount", tmp_path / "holds-scratch"
    (scratch_parent / "scratch").mkdir(parents=True)
    mount.mkdir()
    for path in (mount, scratch_parent):
        path.chmod(0o777)
    with sandbox.hidden([mount, scratch_parent, tmp_path / "missing"],
                        keep=[scratch_parent / "scratch"]) as changed:
        assert changed == [mount]
        assert mode(mount) == 0o770
        assert mode(scratch_parent) == 0o777  # it holds what the account needs
    assert mode(mount) == 0o777


def test_no_account_without_root_or_without_the_user() -> None:
    if os.geteuid() != 0:
        assert sandbox.find_account("root") is None
    assert sandbox.find_account("no-such-user-torchvet-test") is None
    assert sandbox.find_account("root") is None  # never root itself


@needs_root
def test_the_scratch_belongs_to_root_with_the_accounts_directories_inside(
        tmp_path: Path) -> None:
    root = tmp_path / "scratch"
    root.mkdir()
    made = Scratch.create(root, STRANGER)
    assert mode(root) == 0o711 and root.stat().st_uid == 0
    for path in (made.home, made.tmp, made.out, made.venv):
        assert (path.stat().st_uid, mode(path)) == (STRANGER.uid, 0o700)
    assert not made.workspace.exists()  # the copy makes it


LEAVE_DAEMON = "setsid sleep 300 </dev/null >/dev/null 2>&1 & id -u"  # an orphan in its own session


@needs_root
def test_every_process_of_the_account_is_killed(tmp_path: Path) -> None:
    result = subprocess.run(["sh", "-c", LEAVE_DAEMON], cwd="/",
                            capture_output=True, text=True, timeout=60,
                            **STRANGER.popen_kwargs())
    assert result.stdout.strip() == str(STRANGER.uid), result.stderr
    assert sandbox.processes_of(STRANGER.uid)  # the setsid daemon outlived its parent
    assert sandbox.kill_all(STRANGER) >= 1
    assert sandbox.processes_of(STRANGER.uid) == []
