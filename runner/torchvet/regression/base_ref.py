"""A checkout of a base git ref in a directory of its own, for ``--baseline REF``.

The files of the ref's commit are written with ``git read-tree`` into a throwaway index
and ``git checkout-index`` into the directory: the repository's index, work tree,
worktree list and refs are never touched and no hook runs, so it works the same in a
read-only or foreign-owned checkout (a container action's workspace) and leaves nothing
behind. No torch here.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ..errors import UsageError


class BaseRefError(UsageError):
    """git cannot produce the base: not a repository, unknown ref, shallow clone."""


@dataclass(frozen=True)
class BaseCheckout:
    """The base's files in ``root`` and the project inside it (the same relative path as
    the project being checked)."""

    ref: str
    commit: str
    root: Path
    project: Path

    @property
    def label(self) -> str:
        short = self.commit[:7]
        return f"base {short}" if self.ref.startswith(short) else f"base {self.ref} ({short})"


def _git(args: Sequence[str], cwd: Path, env: dict[str, str] | None = None) -> str:
    # safe.directory: the checkout may belong to another user (a container's workspace);
    # only reads and a private index are involved, with no hook and no fsmonitor to run
    command = ["git", "-c", "safe.directory=*", "-c", "core.hooksPath=/dev/null",
               "-c", "core.fsmonitor=false", *args]
    try:
        proc = subprocess.run(command, cwd=cwd, capture_output=True, text=True,
                              check=False, env=env)
    except OSError as exc:
        raise BaseRefError(f"--baseline needs git: {exc}") from None
    if proc.returncode != 0:
        raise BaseRefError(proc.stderr.strip() or f"git {' '.join(args)} failed")
    return proc.stdout


def resolve(project_root: Path, ref: str) -> tuple[Path, str]:
    """(the repository's top, the full commit SHA ``ref`` names)."""
    if ref.startswith("-"):  # git would read it as an option
        raise BaseRefError(f"--baseline {ref}: a git ref cannot start with '-'")
    try:
        top = Path(_git(["rev-parse", "--show-toplevel"], project_root).strip()).resolve()
    except BaseRefError as exc:
        raise BaseRefError(f"--baseline {ref}: {project_root} is not in a git repository "
                           f"({exc})") from None
    try:
        commit = _git(["rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}"], top).strip()
    except BaseRefError:
        raise BaseRefError(
            f"--baseline {ref}: no such commit in {top}; in GitHub Actions, check out with "
            "fetch-depth: 0 (or fetch the base ref) so the pull request's base exists"
        ) from None
    return top, commit


def export(project_root: Path, ref: str, destination: Path) -> BaseCheckout:
    """Write the files of ``ref`` under ``destination``; the project's counterpart is
    at the same path relative to the repository's top."""
    top, commit = resolve(project_root.resolve(), ref)
    destination.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="torchvet-index-") as scratch:
        env = {**os.environ, "GIT_INDEX_FILE": str(Path(scratch) / "index")}
        _git(["read-tree", commit], top, env)
        _git(["checkout-index", "--all", "--force",
              f"--prefix={destination.resolve()}{os.sep}"], top, env)
    relative = project_root.resolve().relative_to(top)
    return BaseCheckout(ref, commit, destination, destination / relative)
