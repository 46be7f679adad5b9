"""Which output elements a sample owns, found by influence rather than by position.

Sample ``k`` is replaced (along each input leaf's discovered batch dim) and the output
elements that move are the ones it influences; every other sample replaced at once, the
elements that move are the ones its batch mates influence. A sample owns the first set,
and owning means no batch mate moves any of it. This needs no assumption about where the
batch lives in the output: folded ``(T·B, C)`` rows, ``(B·N, F)`` nodes, a batch-second
hidden state or a pooled statistic are judged alike.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from ...unit.context import CheckContext
from ...unit.inputs import Inputs
from ...unit.pytree import leaves
from ...unit.seeding import derived_seed, seed_everything
from . import layout


def input_dims(ctx: CheckContext) -> dict[str, int]:
    """Input leaf -> the dim it carries the batch in (unfolded leaves only)."""
    return {path: leaf.dim for path, leaf in layout.input_layout(ctx).items()
            if leaf is not None and leaf.dim is not None and leaf.factor == 1}


def mix(keep: Inputs, other: Inputs, dims: dict[str, int], k: int) -> Inputs:
    """Sample ``k`` from ``keep``, the rest from ``other``."""
    named = iter(p for p, _ in keep.tensors())
    other_tensors = dict(other.tensors())

    def pick(t: torch.Tensor) -> torch.Tensor:
        path = next(named)
        o = other_tensors.get(path)
        if path not in dims or o is None or o.shape != t.shape:
            return t.clone()  # a model may edit its inputs in place: each forward owns its own
        mixed = o.clone()
        mixed.select(dims[path], k).copy_(t.select(dims[path], k))
        return mixed

    return keep.map(pick)


def one_sample(inputs: Inputs, dims: dict[str, int], k: int) -> Inputs:
    named = iter(p for p, _ in inputs.tensors())

    def pick(t: torch.Tensor) -> torch.Tensor:
        path = next(named)
        return (t.narrow(dims[path], k, 1) if path in dims else t).clone()

    return inputs.map(pick)


def moved(ctx: CheckContext, ref: Any, new: Any, paths: set[str]) -> dict[str, torch.Tensor]:
    """Leaf -> boolean mask of the elements of ``new`` that differ from ``ref`` beyond the
    cross-batch tolerance (NaN/Inf appearing or vanishing counts as a move)."""
    new_leaves = dict(leaves(new))
    masks: dict[str, torch.Tensor] = {}
    for path, a in leaves(ref):
        b = new_leaves.get(path)
        if path not in paths or b is None or a.shape != b.shape or not a.is_floating_point():
            continue
        masks[path] = differs(ctx, a, b)
    return masks


def differs(ctx: CheckContext, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Elementwise: ``a`` and ``b`` differ beyond the cross-batch tolerance."""
    atol, rtol = ctx.tolerance(a.dtype, cross_batch=True)
    diff = (a.double() - b.double()).abs()
    allowed = atol + rtol * b.double().abs()
    finite = torch.isfinite(a).eq(torch.isfinite(b))
    return (diff > allowed).nan_to_num(False) | ~finite


@dataclass(frozen=True)
class Ownership:
    """What sample ``k`` influences (``own``) and what its batch mates do (``others``)."""

    k: int
    own: dict[str, torch.Tensor]
    others: dict[str, torch.Tensor]

    def shared(self) -> tuple[str, int] | None:
        """(leaf, flat index) of the first element both sample ``k`` and a batch mate move."""
        for path, own in self.own.items():
            both = own & self.others.get(path, torch.zeros_like(own))
            if bool(both.any()):
                return path, int(both.flatten().nonzero()[0])
        return None


def ownership(ctx: CheckContext, base_inputs: Inputs, other: Inputs, base: Any,
              paths: set[str], k: int, batch: int) -> Ownership:
    """One forward with sample ``k`` kept and every batch mate replaced, compared with the
    base output (what the mates move) and the fully replaced output (what ``k`` moves)."""
    dims = input_dims(ctx)
    model = ctx.model.eval()
    seed_everything(derived_seed(ctx.seed, "eval", batch, 0))
    with torch.no_grad():
        mixed = ctx.call(model, mix(base_inputs, other, dims, k))
    replaced = replaced_output(ctx, other, batch)
    return Ownership(k, moved(ctx, replaced, mixed, paths), moved(ctx, base, mixed, paths))


def replaced_output(ctx: CheckContext, other: Inputs, batch: int) -> Any:
    """The eval output on the second input variant, memoised: every sample replaced."""

    def compute() -> Any:
        seed_everything(derived_seed(ctx.seed, "eval", batch, 0))
        with torch.no_grad():
            return ctx.call(ctx.model.eval(), other.map(torch.Tensor.clone))

    return ctx.memo(("influence-replaced", batch), compute)


def owned_rows(own: torch.Tensor, dim: int) -> list[int]:
    """Indices along ``dim`` holding any element the sample moves."""
    # one reduction over the other dims, flattened: any() takes a tuple of dims only
    # from torch 2.2
    per_row = own.movedim(dim, 0).reshape(own.shape[dim], -1).any(dim=1)
    return per_row.nonzero().flatten().tolist()
