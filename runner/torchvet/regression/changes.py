"""The "Model changes" of a run against a baseline, as the terminal and the job summary
show them: per unit, parameters, forward FLOPs and activation memory before → after,
whether its outputs changed (regression.outputs' verdict) and whether old checkpoints
still load. Reads :attr:`UnitReport.changes`; runs nothing. The terminal lines are here;
the job summary writes the same cells as markdown.
"""

from __future__ import annotations

from ..results import UnitReport
from .diff import human

COLUMNS = ("Unit", "Parameters", "FLOPs (forward)", "Activation memory (bytes)",
           "Outputs changed", "Checkpoint compatible")


def figure(pair: object) -> str:
    """``1.2 M → 1.5 M (+25.0%)``, ``1.2 M`` when unchanged, ``–`` when not measured."""
    if not isinstance(pair, list) or len(pair) != 2:
        return "–"
    before, after = (v if isinstance(v, (int, float)) else None for v in pair)
    if before is None or after is None:
        return f"{_maybe(before)} → {_maybe(after)}" if before != after else "–"
    if before == after:
        return human(after)
    share = f" ({(after - before) / before:+.1%})" if before else ""
    return f"{human(before)} → {human(after)}{share}"


def _maybe(value: float | None) -> str:
    return "–" if value is None else human(value)


def yes_no(value: object, bad: bool) -> str:
    """``yes``/``no``, flagged when it is the bad answer; ``–`` when not known."""
    if value is None:
        return "–"
    flag = " ⚠️" if bool(value) is bad else ""
    return ("yes" if value else "no") + flag


def compared(reports: list[UnitReport]) -> list[UnitReport]:
    return [r for r in reports if r.changes]


def baselines(reports: list[UnitReport]) -> list[str]:
    return sorted({str(r.changes.get("baseline") or "") for r in compared(reports)} - {""})


def cells(report: UnitReport) -> list[str]:
    """A unit's row, its name first (unescaped: each reporter escapes for its medium)."""
    c = report.changes
    return [report.display_name, figure(c.get("params")), figure(c.get("flops")),
            figure(c.get("activation_bytes")), yes_no(c.get("outputs_changed"), bad=True),
            yes_no(c.get("checkpoint_compatible"), bad=False)]


def text_lines(reports: list[UnitReport]) -> list[str]:
    """The table for the terminal ('' lines when nothing was compared)."""
    rows = [cells(r) for r in compared(reports)]
    if not rows:
        return []
    table = [list(COLUMNS), *rows]
    widths = [max(len(row[i]) for row in table) for i in range(len(COLUMNS))]
    against = ", ".join(baselines(reports))
    lines = [f"model changes{f' against {against}' if against else ''}:"]
    lines += ["  " + "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
              for row in table]
    return lines
