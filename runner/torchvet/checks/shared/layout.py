"""Where the batch lives: for each input and output leaf, the dim whose size follows the
batch size across the batch sizes the forward checks already run.

A leaf either carries the batch in one dim (``dim``, ``factor`` 1: ``(B, C)``,
``(T, B, C)``), carries it folded into a dim with a fixed factor (``(T·B, C)`` rows,
``(B·N, F)`` nodes), does not follow the batch at all (``dim`` None: a shared tensor, a
pooled statistic), or changes in some other way between batch sizes (no layout: a
``.squeeze()`` at batch size 1, a hard-coded size), which forward.batch_sizes reports.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ...unit.context import CheckContext
from ...unit.memory_plan import OUTPUTS_BY_SIZE
from ...unit.pytree import leaves
from ...unit.text import shape_str

BATCH_SIZES = (1, 2, 3)
INPUT_LAYOUT = "input-layout"


@dataclass(frozen=True)
class LeafLayout:
    """One leaf's layout; ``dim`` None when its size does not follow the batch."""

    dim: int | None
    factor: int = 1

    def describe(self, shape: tuple[int, ...], batch: int) -> str:
        """``(35·b, 50), batch folded into dim 0 with factor 35`` and alike."""
        if self.dim is None:
            return f"{shape_str(shape)}, does not follow the batch"
        dims = [str(s) for s in shape]
        dims[self.dim] = "b" if self.factor == 1 else f"{self.factor}·b"
        shown = f"({', '.join(dims)})"
        if self.factor == 1:
            return f"{shown}, batch in dim {self.dim}"
        return f"{shown}, batch folded into dim {self.dim} with factor {self.factor}"


def discover(by_size: Mapping[int, tuple[int, ...]], declared: int | None = None
             ) -> LeafLayout | None:
    """The layout that explains every shape in ``by_size`` (batch size -> shape); None
    when no single dim (the ``declared`` one, when given) follows the batch size with a
    fixed factor."""
    shapes = set(by_size.values())
    if len(shapes) == 1 and declared is None:
        return LeafLayout(None)
    ranks = {len(s) for s in shapes}
    if len(ranks) != 1:
        return None
    rank = ranks.pop()
    base_size = min(by_size)
    base = by_size[base_size]
    found = []
    for dim in range(rank):
        if (declared is not None and dim != declared % max(rank, 1)) or base[dim] % base_size:
            continue
        factor = base[dim] // base_size
        if factor >= 1 and all(
            s[dim] == factor * size and s[:dim] + s[dim + 1:] == base[:dim] + base[dim + 1:]
            for size, s in by_size.items()
        ):
            found.append(LeafLayout(dim, factor))
    if not found:
        return None
    return min(found, key=lambda layout: (layout.factor, layout.dim))


def shapes_by_leaf(values: Mapping[int, Any]) -> dict[str, dict[int, tuple[int, ...]]]:
    """leaf path -> batch size -> shape, over the values that share one structure."""
    result: dict[str, dict[int, tuple[int, ...]]] = {}
    for size, value in values.items():
        for path, tensor in leaves(value):
            result.setdefault(path, {})[size] = tuple(tensor.shape)
    return {p: s for p, s in result.items() if len(s) == len(values)}


def outputs_by_size(ctx: CheckContext) -> dict[int, Any]:
    """Eval outputs at batch sizes 1, 2, 3 (and the standard size); exceptions kept."""

    def compute() -> dict[int, Any]:
        results: dict[int, Any] = {}
        for size in sorted({*BATCH_SIZES, ctx.batch_size}):
            try:
                results[size] = ctx.eval_output(size)
            except Exception as exc:
                results[size] = exc
        return results

    return ctx.memo(OUTPUTS_BY_SIZE, compute)


def output_layout(ctx: CheckContext) -> dict[str, LeafLayout | None]:
    """Each output leaf's layout over the batch sizes that ran (no forward of its own)."""
    ran = {s: o for s, o in outputs_by_size(ctx).items() if not isinstance(o, Exception)}
    return {path: discover(by_size, _declared(ctx, "output", path))
            for path, by_size in shapes_by_leaf(ran).items()}


def input_layout(ctx: CheckContext) -> dict[str, LeafLayout | None]:
    """Each input leaf's layout, read off ``inputs(b)`` (no forward)."""

    def compute() -> dict[str, LeafLayout | None]:
        made = {size: ctx.inputs(size) for size in sorted({*BATCH_SIZES, ctx.batch_size})}
        by_leaf: dict[str, dict[int, tuple[int, ...]]] = {}
        for size, inputs in made.items():
            for path, tensor in inputs.tensors():
                by_leaf.setdefault(path, {})[size] = tuple(tensor.shape)
        return {path: discover(by_size, _declared(ctx, "input", path))
                for path, by_size in by_leaf.items() if len(by_size) == len(made)}

    return ctx.memo(INPUT_LAYOUT, compute)


def _declared(ctx: CheckContext, side: str, path: str) -> int | None:
    """A ``batch_dim`` the spec declares for this leaf (``{"input": {...}, "output":
    {...}}`` by leaf path, or one int for every leaf of both sides)."""
    declared = getattr(ctx.spec, "batch_dim", None) if ctx.spec else None
    if declared is None:
        return None
    if isinstance(declared, int):
        return declared
    value = declared.get(side, {}).get(path) if isinstance(declared, Mapping) else None
    return value if isinstance(value, int) else None


def inputs_batch_dim(ctx: CheckContext) -> int | None:
    """The one dim every batched input leaf carries the batch in, unfolded; None when
    they disagree or none follows the batch."""
    dims = {leaf.dim for leaf in input_layout(ctx).values()
            if leaf is not None and leaf.dim is not None and leaf.factor == 1}
    return dims.pop() if len(dims) == 1 else None


def declared(ctx: CheckContext) -> bool:
    """The spec declares ``batch_dim``: the layout is the user's, not discovered."""
    return bool(ctx.spec) and getattr(ctx.spec, "batch_dim", None) is not None
