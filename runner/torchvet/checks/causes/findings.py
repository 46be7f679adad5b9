"""What a learning diagnostic found, in one shape: the check reports it, and
training.overfit / learning.progress cite it as the mechanism behind a loss that does
not fall.

Each diagnostic module has a ``find(ctx) -> Finding | None`` (memoised here), a pure
reading of the shared probe and runs; its ``@check`` only turns the finding into a
verdict.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from ...results import Status
from ...unit.context import CheckContext
from ...verdict import Location, Outcome, Skip, passed
from ..shared.probe import InitProbe

FIND_ORDER = ("learning.output_vs_loss", "learning.dead_units", "learning.saturation",
              "learning.gradient_flow", "learning.input_scale", "learning.learning_rate",
              "learning.capacity")


@dataclass
class Finding:
    check: str
    status: Status  # FAILED (the mechanism is certain) or WARNED (a smell)
    message: str
    details: str = ""
    where: Location = None
    data: dict[str, Any] = field(default_factory=dict)

    def outcome(self) -> Outcome:
        return Outcome(self.status, self.message, self.details, self.where, self.data)


Finder = Callable[[CheckContext], "Finding | None"]
FINDERS: dict[str, Finder] = {}


def finder(check_id: str) -> Callable[[Finder], Finder]:
    """Register ``find`` for ``check_id``; calls are memoised per unit."""

    def register(func: Finder) -> Finder:
        def memoised(ctx: CheckContext) -> Finding | None:
            return ctx.memo(("learning-finding", check_id), lambda: func(ctx))

        FINDERS[check_id] = memoised
        return memoised

    return register


def report(found: Finding | None, healthy: str, data: dict[str, Any] | None = None) -> Outcome:
    if found is not None:
        return found.outcome()
    outcome = passed(healthy)
    outcome.data = data or {}
    return outcome


def likely_causes(ctx: CheckContext, exclude: Sequence[str] = ()) -> list[Finding]:
    """Every learning diagnostic's finding, most certain first (one that cannot run is
    silent here: its own check says why)."""
    found: list[Finding] = []
    for check_id in FIND_ORDER:
        if check_id in exclude or check_id not in FINDERS:
            continue
        try:
            result = FINDERS[check_id](ctx)
        except Skip:
            continue
        if result is not None:
            found.append(result)
    return sorted(found, key=lambda f: f.status is not Status.FAILED)


def cause_phrase(causes: Sequence[Finding]) -> str:
    """``"; likely cause (learning.x): ..."`` for a message, or ''."""
    if not causes:
        return ""
    first = causes[0]
    more = f" (and {len(causes) - 1} more, in the details)" if len(causes) > 1 else ""
    return f"; likely cause ({first.check}): {first.message}{more}"


# --------------------------------------------------------------------------- places


def where_module(ctx: CheckContext, path: str) -> Location:
    """The line that assigns module ``path`` (its parameters' module, else the model)."""
    if path:
        found = ctx.locator.for_path(ctx.model, path)
        if found:
            return found
        params = [n for n, _ in ctx.model.named_parameters() if n.startswith(path + ".")]
        if params:
            return ctx.where_parameters(params)
    return ctx.where_model()


# --------------------------------------------------------------------------- tables


def layer_table(probe: InitProbe) -> dict[str, Any]:
    """Per layer, in execution order: width, output RMS, relative gradient, and the dead
    / saturated share of the activation that follows it (the compact table the reports
    show)."""
    rows: list[list[Any]] = []
    acts = sorted(probe.activations, key=lambda a: a.order)
    for layer in probe.layers:
        names = [n for n, owner in probe.owner.items() if owner == layer.name]
        grad = math.sqrt(sum(probe.grad_norms.get(n, 0.0) ** 2 for n in names))
        weight = math.sqrt(sum(probe.weight_norms.get(n, 0.0) ** 2 for n in names))
        after = next((a for a in acts if a.order > layer.order), None)
        rows.append([
            layer.name or "(model)", layer.kind, layer.out_width, _round(layer.out_rms),
            _round(grad / weight) if weight > 0 else None,
            _round(after.dead) if after is not None and after.dead is not None else None,
            _round(after.saturated) if after is not None and after.saturated is not None
            else None,
        ])
    return {"columns": ["layer", "type", "width", "out rms", "grad/weight", "dead",
                        "saturated"], "rows": rows}


def table_text(table: dict[str, Any], limit: int = 30) -> str:
    """The table as aligned text for details."""
    columns = table["columns"]
    cells = [[_cell(v) for v in row] for row in table["rows"][:limit]]
    widths = [max(len(c), *(len(r[i]) for r in cells)) if cells else len(c)
              for i, c in enumerate(columns)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True))]
    lines += ["  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)) for r in cells]
    if len(table["rows"]) > limit:
        lines.append(f"... {len(table['rows']) - limit} more layers")
    return "\n".join(lines)


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.3g}"
    return str(value)


def _round(value: float) -> float | None:
    if not math.isfinite(value):
        return None
    return float(f"{value:.4g}")


def curve(values: Sequence[float], limit: int = 60) -> list[float | None]:
    """A loss curve for the reports: at most ``limit`` points, non-finite as None."""
    step = max(1, math.ceil(len(values) / limit))
    picked = list(values[::step])
    if values and picked[-1] is not values[-1] and len(values) > 1:
        picked.append(values[-1])
    return [_round(float(v)) for v in picked]
