"""The workspace a cell mounts: what a checkout of the working tree would hold."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.helpers.action import HEALTHY
from torchvet.action.docker.workspace import remove_tree, snapshot


def git(cwd: Path, *args: str) -> None:
    subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@example.com", *args],
                   cwd=cwd, check=True, capture_output=True)


def files_in(root: Path) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())


@pytest.mark.skipif(shutil.which("git") is None, reason="needs git")
def test_the_snapshot_holds_what_a_checkout_would(tmp_path: Path) -> None:
    project = tmp_path / "project"
    shutil.copytree(HEALTHY, project)
    (project / ".gitignore").write_text("data/\n.venv/\n", encoding="utf-8")
    git(project, "init", "-q")
    git(project, "add", ".")
    git(project, "commit", "-q", "-m", "init")
    (project / "new_module.py").write_text("x = 1\n", encoding="utf-8")  # not added yet
    (project / "data").mkdir()
    (project / "data" / "big.bin").write_bytes(b"0" * 1000)
    (project / ".venv").mkdir()
    (project / ".venv" / "pyvenv.cfg").write_text("", encoding="utf-8")
    copy = tmp_path / "copy"
    files, size = snapshot(project, copy)
    found = files_in(copy)
    assert found == [".gitignore", "new_module.py", "pyproject.toml",
                     "src/healthy_models/__init__.py", "src/healthy_models/data.py",
                     "src/healthy_models/models.py"]
    assert files == len(found) and size > 0


def test_without_git_the_snapshot_skips_environments_and_caches(tmp_path: Path,
                                                                monkeypatch: Any) -> None:
    project = tmp_path / "project"
    shutil.copytree(HEALTHY, project)
    for skipped in (".venv/lib/x.py", "src/healthy_models/__pycache__/m.pyc", ".git/HEAD"):
        (project / skipped).parent.mkdir(parents=True, exist_ok=True)
        (project / skipped).write_text("", encoding="utf-8")
    monkeypatch.setenv("PATH", "")  # no git
    copy = tmp_path / "copy"
    snapshot(project, copy)
    assert files_in(copy) == ["pyproject.toml", "src/healthy_models/__init__.py",
                              "src/healthy_models/data.py", "src/healthy_models/models.py"]


def test_remove_tree_says_whether_the_tree_is_gone(tmp_path: Path) -> None:
    tree = tmp_path / "t"
    (tree / "a").mkdir(parents=True)
    (tree / "a" / "f").write_text("x", encoding="utf-8")
    assert remove_tree(tree) and not tree.exists()
