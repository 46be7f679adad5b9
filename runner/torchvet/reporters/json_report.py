"""``--json``: the whole run, round-trippable through :meth:`RunReport.from_dict`.

Written through :mod:`.files` (never through a symlink) and read back cleaned
(:func:`~torchvet.results.clean_run`): a report may come from another machine or from a
container that ran untrusted code.
"""

from __future__ import annotations

import json
from pathlib import Path

from ..errors import UsageError
from ..results import RunReport, clean_run
from . import files


class ReportError(UsageError):
    """A file that is not a readable torchvet JSON report."""


def render(run: RunReport) -> str:
    return json.dumps(clean_run(run).to_dict(), indent=2, ensure_ascii=False) + "\n"


def write(run: RunReport, path: str | Path) -> None:
    files.write_text(path, render(run))


def read(path: str | Path, *, follow_symlinks: bool = True, owner: int | None = None,
         limit: int = files.READ_LIMIT) -> RunReport:
    """The report at ``path``, cleaned; :class:`ReportError` says what is wrong with it.
    ``follow_symlinks``, ``owner`` and ``limit``: see :func:`.files.read_bytes`."""
    hint = "write one with torchvet run --json FILE"
    try:
        raw = files.read_bytes(path, limit=limit, follow_symlinks=follow_symlinks,
                               owner=owner)
        data = json.loads(raw.decode("utf-8"))
    except OSError as exc:
        raise ReportError(str(exc) if isinstance(exc, files.ReportFileError) else
                          f"{path}: cannot read it ({exc.strerror or exc})") from None
    except (ValueError, RecursionError) as exc:
        raise ReportError(f"{path}: not a torchvet JSON report ({exc}); {hint}") from None
    if not isinstance(data, dict):
        raise ReportError(f"{path}: not a torchvet JSON report; {hint}")
    try:
        return clean_run(RunReport.from_dict(data))
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise ReportError(f"{path}: {exc}") from None
