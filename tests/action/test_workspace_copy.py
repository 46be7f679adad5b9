"""The copy of the workspace the project's code gets: what "other" could read, symlinks
as symlinks, nothing special, no checkout token, owned by the account."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from torchvet.action.sandbox import Account
from torchvet.action.workspace_copy import copy_workspace, scrub_git_credentials

TOKEN_CONFIG = ('[core]\n\tbare = false\n[http "https://github.com/"]\n'
                "\textraheader = AUTHORIZATION: basic SECRET\n[user]\n\tname = ci\n")


def workspace(root: Path) -> Path:
    (root / "src" / "pkg").mkdir(parents=True)
    (root / "src" / "pkg" / "models.py").write_text("x = 1\n")
    (root / "run.sh").write_text("#!/bin/sh\n")
    (root / "run.sh").chmod(0o755)
    (root / "secret.json").write_text('{"key": "left by an earlier step"}')
    (root / "secret.json").chmod(0o600)
    (root / "private").mkdir(mode=0o700)
    (root / "private" / "f").write_text("private")
    (root / "link-out").symlink_to("/etc/hostname")
    (root / "link-in").symlink_to("src/pkg")
    os.mkfifo(root / "fifo")
    (root / ".git" / "modules" / "sub").mkdir(parents=True)
    (root / ".git" / "config").write_text(TOKEN_CONFIG)
    (root / ".git" / "modules" / "sub" / "config").write_text(TOKEN_CONFIG)
    for directory in (root, root / "src", root / "src" / "pkg", root / ".git",
                      root / ".git" / "modules", root / ".git" / "modules" / "sub"):
        directory.chmod(0o755)
    return root


def test_the_copy_holds_what_others_may_read_and_no_token(tmp_path: Path) -> None:
    source = workspace(tmp_path / "ws")
    target = tmp_path / "copy"
    stats = copy_workspace(source, target, None)
    names = sorted(str(p.relative_to(target)) for p in target.rglob("*"))
    assert names == [".git", ".git/config", ".git/modules", ".git/modules/sub",
                     ".git/modules/sub/config", "link-in", "link-out", "run.sh", "src",
                     "src/pkg", "src/pkg/models.py"]
    assert (target / "link-out").is_symlink()
    assert os.readlink(target / "link-out") == "/etc/hostname"  # not followed
    assert os.access(target / "run.sh", os.X_OK)
    for config in (target / ".git" / "config", target / ".git" / "modules" / "sub" / "config"):
        text = config.read_text()
        assert "SECRET" not in text and "name = ci" in text
    assert "SECRET" in (source / ".git" / "config").read_text()  # the original stays
    assert (stats.files, stats.skipped) == (4, 3)  # secret.json, private/, fifo
    assert "4 files" in stats.describe() and "3 private or special" in stats.describe()


@pytest.mark.skipif(os.geteuid() != 0, reason="giving files to another user needs root")
def test_the_copy_belongs_to_the_account(tmp_path: Path) -> None:
    account = Account("stranger", 10097, 10097)
    target = tmp_path / "copy"
    copy_workspace(workspace(tmp_path / "ws"), target, account)
    owners = {p.lstat().st_uid for p in [target, *target.rglob("*")]}
    assert owners == {account.uid}


def test_scrubbing_leaves_a_config_without_credentials_alone(tmp_path: Path) -> None:
    (tmp_path / "config").write_text("[core]\n\tbare = false\n")
    assert scrub_git_credentials(tmp_path) == 0
    assert scrub_git_credentials(tmp_path / "missing") == 0
