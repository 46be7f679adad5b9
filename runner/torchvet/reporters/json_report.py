"""``--json``: the whole run, round-trippable through :meth:`RunReport.from_dict`."""

from __future__ import annotations

import json
from pathlib import Path

from ..results import RunReport


def render(run: RunReport) -> str:
    return json.dumps(run.to_dict(), indent=2, ensure_ascii=False) + "\n"


def write(run: RunReport, path: str | Path) -> None:
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(target.name + ".tmp")
    tmp.write_text(render(run), encoding="utf-8")
    tmp.replace(target)


def read(path: str | Path) -> RunReport:
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: not a torchvet JSON report ({exc})") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path}: not a torchvet JSON report")
    try:
        return RunReport.from_dict(data)
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"{path}: {exc}") from None
