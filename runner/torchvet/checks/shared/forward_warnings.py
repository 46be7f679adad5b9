"""Warnings raised in the forward: captured every time (torch's warn-once ones too),
each with the project line it came from.

forward.warnings reports the eval forward's (:func:`forward_warnings`, memoised); the loss
capture and the forward-error explainer record the warnings of their own replays, and
training.gradients cites a warning as the lead behind a gradient that never arrives.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator
from dataclasses import dataclass

import torch

from ...unit.context import CheckContext
from ...unit.seeding import derived_seed, seed_everything
from ...verdict import Location


@dataclass
class CaughtWarning:
    category: str
    message: str
    where: Location | None


@contextlib.contextmanager
def capture_warnings(ctx: CheckContext) -> Iterator[list[CaughtWarning]]:
    """Every warning raised inside, each time (torch's warn-once ones too)."""
    caught: list[CaughtWarning] = []
    always = torch.is_warn_always_enabled()
    torch.set_warn_always(True)
    try:
        with warnings.catch_warnings(record=True) as records:
            warnings.simplefilter("always")
            yield caught
    finally:
        torch.set_warn_always(always)
    seen = set()
    for record in records:
        text = str(record.message).strip().splitlines()[0] if str(record.message) else ""
        text = text.split(" (Triggered internally at")[0]
        where = (ctx.locator.relative(record.filename), record.lineno) if (
            ctx.locator.is_project_file(record.filename)) else None
        key = (text, where)
        if key in seen:
            continue
        seen.add(key)
        caught.append(CaughtWarning(record.category.__name__, text, where))


def forward_warnings(ctx: CheckContext) -> tuple[list[CaughtWarning],
                                                 BaseException | None]:
    """Warnings the eval forward raises at lines of the project (memoised), and the
    exception that ended it, if any."""

    def compute() -> tuple[list[CaughtWarning], BaseException | None]:
        error = None
        with capture_warnings(ctx) as caught:
            seed_everything(derived_seed(ctx.seed, "eval", ctx.batch_size, 0))
            try:
                with torch.no_grad():
                    ctx.call(ctx.model.eval(), ctx.inputs())
            except Exception as exc:
                error = exc
        return [w for w in caught if w.where is not None], error

    return ctx.memo("forward-warnings", compute)
