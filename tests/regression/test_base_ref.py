"""A base ref's files in a directory of their own (torchvet.regression.base_ref), the
repository left exactly as it was."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from torchvet.regression.base_ref import BaseRefError, export


def git(root: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@example.com",
         "-c", "commit.gpgsign=false", *args],
        cwd=root, check=True, capture_output=True, text=True).stdout


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    (root / "proj" / "src").mkdir(parents=True)
    (root / "proj" / "src" / "m.py").write_text("VERSION = 'base'\n")
    (root / "README.md").write_text("readme\n")
    git(root, "init", "-q")
    git(root, "add", "-A")
    git(root, "commit", "-qm", "base")
    (root / "proj" / "src" / "m.py").write_text("VERSION = 'head'\n")
    (root / "proj" / "src" / "new.py").write_text("\n")
    git(root, "add", "-A")
    git(root, "commit", "-qm", "head")
    (root / "proj" / "src" / "m.py").write_text("VERSION = 'uncommitted'\n")
    return root


def test_the_base_files_are_written_and_the_repository_is_untouched(
        repo: Path, tmp_path: Path) -> None:
    status = git(repo, "status", "--porcelain")
    index = (repo / ".git" / "index").read_bytes()
    base = export(repo / "proj", "HEAD~1", tmp_path / "base")
    assert base.project == tmp_path / "base" / "proj"
    assert (base.project / "src" / "m.py").read_text() == "VERSION = 'base'\n"
    assert not (base.project / "src" / "new.py").exists()
    assert base.commit == git(repo, "rev-parse", "HEAD~1").strip()
    assert base.label == f"base HEAD~1 ({base.commit[:7]})"
    assert git(repo, "status", "--porcelain") == status
    assert (repo / ".git" / "index").read_bytes() == index
    assert len(git(repo, "worktree", "list").splitlines()) == 1
    assert (repo / "proj" / "src" / "m.py").read_text() == "VERSION = 'uncommitted'\n"


def test_a_sha_is_labelled_by_its_short_form(repo: Path, tmp_path: Path) -> None:
    sha = git(repo, "rev-parse", "HEAD~1").strip()
    assert export(repo / "proj", sha, tmp_path / "b").label == f"base {sha[:7]}"


@pytest.mark.parametrize(("ref", "fragment"), [
    ("no-such-ref", "no such commit"),
    ("--output=x", "cannot start with '-'"),
])
def test_a_bad_ref_is_a_usage_error_with_the_fix(repo: Path, tmp_path: Path, ref: str,
                                                 fragment: str) -> None:
    with pytest.raises(BaseRefError, match=fragment):
        export(repo / "proj", ref, tmp_path / "b")


def test_outside_a_repository_it_says_so(tmp_path: Path) -> None:
    with pytest.raises(BaseRefError, match="is not in a git repository"):
        export(tmp_path, "HEAD", tmp_path / "b")
