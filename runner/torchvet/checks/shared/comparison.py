"""Two forward passes compared: the seeded eval forward every comparison repeats, and
the first output leaf that differs between two passes, with how.

state.roundtrip, the portability checks and the export checks compare a model's outputs
with the pristine model's the same way.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from ...unit.context import CheckContext
from ...unit.inputs import Inputs
from ...unit.pytree import leaves, structure
from ...unit.seeding import derived_seed, seed_everything
from ...unit.text import dtype_name, shape_str


@dataclass
class Difference:
    """The first output leaf that differs between two forward passes."""

    path: str
    what: str  # a readable sentence fragment: "differs by 0.31", "changes shape ..."
    max_diff: float = float("inf")

    def __str__(self) -> str:
        return f"{self.path} {self.what}"


def first_difference(ref: Any, got: Any, tolerance: Any, exact_integers: bool = True
                     ) -> Difference | None:
    """Compare two output pytrees; ``tolerance(ref_leaf)`` gives (atol, rtol).

    ``exact_integers=False`` ignores integer/bool leaves (an argmax may flip on a near tie
    when floats legitimately differ, e.g. between devices)."""
    ref_leaves, got_leaves = leaves(ref), leaves(got)
    if [p for p, _ in ref_leaves] != [p for p, _ in got_leaves]:
        return Difference("out", f"changes structure: {structure(ref)} -> {structure(got)}")
    for (path, a), (_, b) in zip(ref_leaves, got_leaves, strict=True):
        if a.shape != b.shape:
            return Difference(path, f"changes shape {shape_str(a.shape)} -> {shape_str(b.shape)}")
        if a.dtype != b.dtype:
            return Difference(path, f"changes dtype {dtype_name(a.dtype)} -> {dtype_name(b.dtype)}")
        a_, b_ = a.detach().cpu(), b.detach().cpu()
        if not (a_.is_floating_point() or a_.is_complex()):
            if exact_integers and not torch.equal(a_, b_):
                changed = int(a_.ne(b_).sum())
                return Difference(path, f"differs in {changed} of {a_.numel()} elements", 0.0)
            continue
        if a_.is_complex():
            a_, b_ = torch.view_as_real(a_), torch.view_as_real(b_)
        atol, rtol = tolerance(a)
        a64, b64 = a_.double(), b_.double()
        same_nonfinite = (a64 == b64) | (torch.isnan(a64) & torch.isnan(b64))
        diff = (a64 - b64).abs().masked_fill(same_nonfinite, 0.0)
        bad = (diff > atol + rtol * a64.abs()) | diff.isnan()
        if bool(bad.any()):
            worst = float(diff.nan_to_num(float("inf")).max())
            return Difference(path, f"differs by {worst:.3g} (atol {atol:g}, rtol {rtol:g})",
                              worst)
    return None


def seeded_eval(ctx: CheckContext, model: Any, inputs: Inputs, set_eval: bool = True) -> Any:
    """The eval forward, seeded exactly like :meth:`CheckContext.eval_output`."""
    seed_everything(derived_seed(ctx.seed, "eval", ctx.batch_size, 0))
    if set_eval:
        model.eval()
    with torch.no_grad():
        return ctx.call(model, inputs)
