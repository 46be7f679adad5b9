"""The workspace a cell mounts at /github/workspace.

By default a private snapshot of PATH: what a checkout of the working tree would hold
(git's tracked and untracked-but-not-ignored files; without git, everything but virtual
environments and caches), with PATH's ``.git`` mounted read-only beside it for tools like
setuptools-scm. So pip's ``build/`` and ``*.egg-info``, the reports and parallel matrix
cells never touch the user's tree, and ignored files (data, venvs) are neither copied nor
seen, as in CI.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
from collections.abc import Iterable
from pathlib import Path

# never copied without git (virtual environments, caches, build leftovers of tools)
SKIP = (".git", ".venv", "venv", ".tox", ".nox", "__pycache__", ".mypy_cache",
        ".pytest_cache", ".ruff_cache", "node_modules", ".ipynb_checkpoints")


def git_files(root: Path) -> list[str] | None:
    """The working tree's files as a checkout would have them: tracked files still
    present and untracked files git does not ignore; None when ``root`` is not in a git
    work tree (or git is missing)."""
    git = shutil.which("git")
    if not git:
        return None
    try:
        inside = subprocess.run([git, "-C", str(root), "rev-parse", "--is-inside-work-tree"],
                                capture_output=True, text=True, timeout=30, check=False)
        if inside.returncode != 0 or inside.stdout.strip() != "true":
            return None
        listed = subprocess.run(
            [git, "-C", str(root), "ls-files", "-z", "--cached", "--others",
             "--exclude-standard"], capture_output=True, timeout=300, check=True)
    except (OSError, subprocess.SubprocessError):
        return None
    names = listed.stdout.decode("utf-8", "surrogateescape").split("\0")
    return sorted({n for n in names if n})


def _copy(source: Path, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    if source.is_symlink():
        os.symlink(os.readlink(source), target)
    elif source.is_dir():  # a submodule's gitlink: the directory as it is
        shutil.copytree(source, target, symlinks=True,
                        ignore=shutil.ignore_patterns(*SKIP[1:]))
    elif source.is_file():
        shutil.copy2(source, target)


def snapshot(root: Path, target: Path) -> tuple[int, int]:
    """Copy the project at ``root`` into ``target``; (files, bytes) copied."""
    names: Iterable[str] | None = git_files(root)
    target.mkdir(parents=True, exist_ok=True)
    if names is None:
        shutil.copytree(root, target, symlinks=True, dirs_exist_ok=True,
                        ignore=shutil.ignore_patterns(*SKIP))
    else:
        for name in names:
            source = root / name
            if source.exists() or source.is_symlink():
                _copy(source, target / name)
    files = size = 0
    for directory, _, entries in os.walk(target):
        for entry in entries:
            files += 1
            with contextlib.suppress(OSError):
                size += os.lstat(os.path.join(directory, entry)).st_size
    return files, size


def remove_tree(path: Path) -> bool:
    """Remove a temporary tree; False when something (root-owned files a killed
    container left) could not be removed."""
    shutil.rmtree(path, ignore_errors=True)
    return not path.exists()
