"""``--json``: the whole run, round-trippable through :meth:`RunReport.from_dict`."""

from __future__ import annotations

import json
from pathlib import Path

from ..errors import UsageError
from ..results import RunReport


class ReportError(UsageError):
    """A file that is not a readable torchvet JSON report."""


def render(run: RunReport) -> str:
    return json.dumps(run.to_dict(), indent=2, ensure_ascii=False) + "\n"


def write(run: RunReport, path: str | Path) -> None:
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(target.name + ".tmp")
    tmp.write_text(render(run), encoding="utf-8")
    tmp.replace(target)


def read(path: str | Path) -> RunReport:
    """The report at ``path``; :class:`ReportError` says what is wrong with it."""
    hint = "write one with torchvet run --json FILE"
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise ReportError(f"{path}: cannot read it ({exc.strerror or exc})") from None
    except ValueError as exc:
        raise ReportError(f"{path}: not a torchvet JSON report ({exc}); {hint}") from None
    if not isinstance(data, dict):
        raise ReportError(f"{path}: not a torchvet JSON report; {hint}")
    try:
        return RunReport.from_dict(data)
    except (KeyError, TypeError, ValueError) as exc:
        raise ReportError(f"{path}: {exc}") from None
