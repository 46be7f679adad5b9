"""Evidence people would rather look at than read: a check's loss curves as a terminal
sparkline and as a Mermaid ``xychart-beta`` chart for the job summary.

Reads ``CheckResult.data["curves"]`` (label -> list of numbers, None for a non-finite
point), never text. Labels are reduced to a safe alphabet before they reach a chart, since
an optimizer's class name is the user's.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

BARS = "▁▂▃▄▅▆▇█"
ASCII_BARS = "_.-:=+*#"
MAX_POINTS = 40
MAX_CHARTS = 3
_UNSAFE = re.compile(r"[^A-Za-z0-9 _.,=()+\-]")


def curves(data: Mapping[str, Any]) -> dict[str, list[float | None]]:
    """The well-formed curves of a result's data (anything else is ignored)."""
    found = data.get("curves") if isinstance(data, Mapping) else None
    if not isinstance(found, Mapping):
        return {}
    out: dict[str, list[float | None]] = {}
    for label, values in found.items():
        if isinstance(values, list) and values and all(
                v is None or isinstance(v, (int, float)) for v in values):
            out[str(label)] = [None if v is None or not math.isfinite(v) else float(v)
                               for v in values]
    return out


def resample(values: Sequence[float | None], points: int = MAX_POINTS) -> list[float | None]:
    if len(values) <= points:
        return list(values)
    step = len(values) / points
    picked = [values[int(i * step)] for i in range(points)]
    picked[-1] = values[-1]
    return picked


def sparkline(values: Sequence[float | None], ascii_only: bool = False) -> str:
    """``▇▆▄▂▁`` scaled between the curve's min and max; ``!`` marks a non-finite point."""
    bars = ASCII_BARS if ascii_only else BARS
    finite = [v for v in values if v is not None]
    if not finite:
        return "!" * len(values)
    low, high = min(finite), max(finite)
    span = high - low
    out = []
    for v in resample(values):
        if v is None:
            out.append("!")
        else:
            level = 0 if span == 0 else round((v - low) / span * (len(bars) - 1))
            out.append(bars[level])
    return "".join(out)


def curve_lines(data: Mapping[str, Any], ascii_only: bool = False) -> list[str]:
    """One line per curve: ``label  ▇▆▄▂▁  2.31 -> 0.62``."""
    lines = []
    for label, values in curves(data).items():
        finite = [v for v in values if v is not None]
        ends = (f"{_num(values[0])} -> {_num(values[-1])}" if finite else "not finite")
        lines.append(f"{safe_label(label)}  {sparkline(values, ascii_only)}  {ends}")
    return lines


def mermaid_charts(data: Mapping[str, Any], title: str) -> str:
    """Fenced ``mermaid`` blocks, one ``xychart-beta`` per curve (GitHub renders them in
    the job summary); '' when the result has no curve."""
    blocks = []
    for label, values in list(curves(data).items())[:MAX_CHARTS]:
        points = _filled(resample(values))
        if not points:
            continue
        low, high = min(points), max(points)
        pad = (high - low) * 0.05 or abs(high) * 0.05 or 1.0
        blocks.append(
            "```mermaid\nxychart-beta\n"
            f'    title "{safe_label(title)}: {safe_label(label)}"\n'
            f'    x-axis "point" 1 --> {len(points)}\n'
            f'    y-axis "loss" {_plain(low - pad)} --> {_plain(high + pad)}\n'
            f"    line [{', '.join(_plain(v) for v in points)}]\n```\n")
    return "\n".join(blocks)


def safe_label(text: str) -> str:
    return _UNSAFE.sub("", text)[:60]


def _filled(values: Sequence[float | None]) -> list[float]:
    """Non-finite points take the last finite value (a chart needs numbers)."""
    out: list[float] = []
    last: float | None = None
    for v in values:
        if v is not None:
            last = v
        if last is not None:
            out.append(last)
    return out


def _plain(value: float) -> str:
    """A number in the plain decimal notation Mermaid parses (no exponent)."""
    text = f"{float(f'{value:.4g}'):.12f}".rstrip("0").rstrip(".")
    return "0" if text in ("", "-0") else text


def _num(value: float | None) -> str:
    if value is None:
        return "nan"
    return f"{value:.4g}"
