"""Where reported paths are relative to, and how a file becomes a report path.

Both sides need it: the parent names a unit's factory file, the worker names a culprit's
line. Neither imports torch.
"""

from __future__ import annotations

import os
from pathlib import Path


def find_report_root(path: Path) -> Path:
    """``$GITHUB_WORKSPACE`` when ``path`` lies in it, else the enclosing git checkout,
    else ``path`` itself."""
    path = path.resolve()
    workspace = os.environ.get("GITHUB_WORKSPACE")
    if workspace:
        ws = Path(workspace).resolve()
        if path == ws or ws in path.parents:
            return ws
    for candidate in (path, *path.parents):
        if (candidate / ".git").exists():
            return candidate
    return path


def report_path(filename: str | os.PathLike[str], root: Path) -> str:
    """``filename`` relative to ``root`` in POSIX form; absolute when outside it."""
    path = Path(filename).resolve()
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return path.as_posix()
