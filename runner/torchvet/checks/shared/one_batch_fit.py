"""Memorising one fixed batch: what training.overfit asks of a model that can learn.

Each attempt continues one of the shared one-batch runs (:mod:`.runs`, which the
learning checks read too) for up to :data:`OVERFIT_MAX_STEPS` steps, and stops at the
goal (half the first loss), at a non-finite loss, or on a plateau: a step count decides,
never the clock.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ...unit.context import CheckContext
from .runs import batch_run

OVERFIT_MAX_STEPS = 400
PLATEAU_WINDOW = 50
PLATEAU_GAIN = 0.01  # of the way to the goal, per window, that counts as still falling
NEAR_GOAL = 0.25  # a plateau within this share of the way from the goal is near it


@dataclass
class Fit:
    """One attempt at memorising one fixed batch."""

    label: str
    losses: list[float]
    goal: float
    state: str  # reached | falling | near | plateau | diverged

    def summary(self) -> str:
        first, best = self.losses[0], min(self.losses)
        steps = len(self.losses) - 1
        if self.state == "reached":
            return f"loss {first:.4g} -> {best:.4g} in {steps} step(s) with {self.label}"
        if self.state == "near":
            return (f"loss {first:.4g} -> {best:.4g} with {self.label}: it levels off near "
                    f"half its start ({self.goal:.4g})")
        return (f"loss {first:.4g} -> {best:.4g} in {steps} steps with {self.label} and "
                f"still falling (goal {self.goal:.4g}): a slow learner, not a stuck one")


def attempts(ctx: CheckContext) -> list[tuple[str, str]]:
    """(label, one-batch run key): a bold Adam first (one batch should be memorised fast),
    the declared optimizer (the run learning.learning_rate reads), then a careful Adam."""
    found = [("Adam lr 0.01", "adam-0.01")]
    spec = ctx.spec
    if spec is not None and spec.optimizer is not None:
        found.append(("your optimizer", "declared"))
    found.append(("Adam lr 0.001", "adam-0.001"))
    return found


def fit_one_batch(ctx: CheckContext, label: str, key: str) -> Fit:
    """Up to OVERFIT_MAX_STEPS steps of the shared one-batch run: stops at the goal (half
    the first loss), at a non-finite loss, or on a plateau; a step count decides, never the
    clock."""
    run = batch_run(ctx, key)
    first = run.until(ctx, 0)
    if run.problem is not None:
        raise run.problem
    goal = first[0] - 0.5 * abs(first[0])
    losses = run.until(ctx, OVERFIT_MAX_STEPS,
                       lambda head: bool(_fit_state(head, goal, len(head) - 1)))
    return Fit(label, losses, goal, _fit_state(losses, goal, len(losses) - 1) or "falling")


def _fit_state(losses: list[float], goal: float, step: int) -> str:
    latest = losses[-1]
    if not math.isfinite(latest):
        return "diverged"
    if latest <= goal:
        return "reached"
    if step < 2 * PLATEAU_WINDOW or (step % 10 and step < OVERFIT_MAX_STEPS):
        return ""
    gap = abs(losses[0] - goal)
    best_now = min(losses)
    best_before = min(losses[:-PLATEAU_WINDOW])
    if best_before - best_now >= PLATEAU_GAIN * gap:
        return "falling" if step >= OVERFIT_MAX_STEPS else ""
    return "near" if best_now <= goal + NEAR_GOAL * gap else "plateau"
