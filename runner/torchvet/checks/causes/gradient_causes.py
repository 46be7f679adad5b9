"""Why a parameter gets no usable gradient: the mechanism behind training.gradients.

The training run only says *what* each parameter received (None, zeros, NaN). These
replays, run after it failed and never on a healthy model, say *why*: the op whose
backward made the NaN (anomaly mode on one short replay, never the whole run), a
``torch.where`` that hides NaN from the forward but not from the backward, weights that
are all zero at init, a parameter the forward replaces on every call.
"""

from __future__ import annotations

import contextlib
import re
import warnings
from typing import Any

import torch

from ...unit import optrace
from ...unit.context import CheckContext
from ...unit.pytree import leaves
from ...verdict import Location
from . import side_effects

_BACKWARD = re.compile(r"Function '(\w+?)Backward\d*' returned (nan|inf)", re.IGNORECASE)
MASKING_OPS = {"where", "masked_fill", "masked_scatter", "nan_to_num"}


def _step_args(ctx: CheckContext) -> tuple[Any, Any]:
    batch = ctx.train_batch_size
    return ctx.inputs(batch), ctx.target(batch)


def hidden_nan(name: str, args: tuple[Any, ...], kwargs: dict[str, Any], out: Any
               ) -> str | None:
    """A where/masked_fill that takes NaN/Inf in and gives a finite result: the forward is
    clean, the backward still multiplies the hidden values' gradient by 0."""
    if optrace.base_name(name) not in MASKING_OPS or not isinstance(out, torch.Tensor):
        return None
    ins = [t for _, t in leaves((args, kwargs), "") if t.is_floating_point()]
    if not out.is_floating_point() or not bool(torch.isfinite(out).all()):
        return None
    if any(not bool(torch.isfinite(t).all()) for t in ins):
        return f"torch.{optrace.base_name(name)}()"
    return None


def nan_origin(ctx: CheckContext) -> tuple[str, Location | None] | None:
    """Where a NaN/Inf gradient comes from, replaying one training step of a fresh copy."""
    inputs, target = _step_args(ctx)
    masked = optrace.trace(
        lambda: ctx.training_loss(ctx.fresh_copy().train(), inputs, target), hidden_nan,
        ctx.locator)
    if masked is not None:
        source = optrace.trace(
            lambda: ctx.training_loss(ctx.fresh_copy().train(), inputs, target),
            optrace.nonfinite_from_finite, ctx.locator)
        made = f" the NaN/Inf that {source[0].split('(')[0]}() makes of some inputs" if (
            source) else " NaN/Inf values"
        return (f"{masked[0]} at {masked[1][0]}:{masked[1][1]} selects around{made}: the forward "
                "is finite, but its backward still multiplies their gradient by 0, and "
                "0 × NaN = NaN; compute the unsafe op on safe inputs (e.g. "
                "torch.where(mask, x, 1).sqrt(), or x.clamp_min(eps))", masked[1])
    return _backward_source(ctx, inputs, target) or _anomaly(ctx, inputs, target)


UNBOUNDED = {"sqrt", "rsqrt", "pow", "log", "log2", "log10", "div", "reciprocal", "norm",
             "acos", "asin", "atan2", "cdist", "__truediv__", "__rtruediv__", "__pow__",
             "__rpow__"}


class GradientWatch(optrace.TorchFunctionMode):
    """Records each op's output tensors and inputs, and whether the gradient that reaches
    each output in the backward is finite (a tensor hook per output)."""

    def __init__(self, ctx: CheckContext) -> None:
        super().__init__()
        self.ctx = ctx
        self.ops: list[tuple[str, Location | None, list[int], list[torch.Tensor]]] = []
        self.finite: dict[int, bool] = {}
        self.keep: list[torch.Tensor] = []  # ids stay unique while the replay lives

    def __torch_function__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        outs = [t for _, t in leaves(out, "") if t.requires_grad and t.is_floating_point()]
        if outs:
            ins = [t for _, t in leaves((args, kwargs), "") if t.requires_grad]
            self.keep.extend(outs + ins)
            for tensor in outs:
                tensor.register_hook(self._note(id(tensor)))
            where = optrace.OpTracer(lambda *a: None, self.ctx.locator)._project_frame()
            self.ops.append((optrace.op_name(func), where, [id(t) for t in outs], ins))
        return out

    def _note(self, key: int) -> Any:
        def hook(grad: torch.Tensor) -> None:
            self.finite[key] = bool(torch.isfinite(grad).all())
        return hook

    def grad_finite(self, tensor: torch.Tensor) -> bool | None:
        if tensor.is_leaf:
            return None if tensor.grad is None else bool(torch.isfinite(tensor.grad).all())
        return self.finite.get(id(tensor))


def _backward_source(ctx: CheckContext, inputs: Any, target: Any
                     ) -> tuple[str, Location | None] | None:
    """The op whose backward turns a finite gradient at its output into a non-finite one
    at its inputs: the last such op of the forward, which the backward meets first."""
    model = ctx.fresh_copy().train()
    watch = GradientWatch(ctx)
    try:
        with watch:
            loss = ctx.training_loss(model, inputs, target)
        loss.backward()
    except Exception:
        return None
    for name, where, outs, ins in reversed(watch.ops):
        if not all(watch.finite.get(key, True) for key in outs):
            continue
        if not any(watch.grad_finite(t) is False for t in ins):
            continue
        op = optrace.base_name(name).strip("_")
        at = f" at {where[0]}:{where[1]}" if where else ""
        why = (f"{op}'s derivative is unbounded where its input is 0 (sqrt of a zero distance, "
               "log(0), division by 0, a fractional power of 0); add an epsilon inside or use "
               "a safe form (torch.cdist, log1p, clamp_min)" if op in UNBOUNDED else
               "its derivative is not finite at these inputs; clamp them or use a stable form")
        return f"the backward of {op}(){at} turns a finite gradient into NaN/Inf: {why}", where
    return None


def _anomaly(ctx: CheckContext, inputs: Any, target: Any) -> tuple[str, Location | None] | None:
    model = ctx.fresh_copy().train()
    error = ""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            with torch.autograd.detect_anomaly(check_nan=True):
                ctx.training_loss(model, inputs, target).backward()
        except RuntimeError as exc:
            error = str(exc)
    match = _BACKWARD.search(error)
    if match is None:
        return None
    op, kind = match.group(1).lower(), match.group(2).lower()
    text = "\n".join(str(w.message) for w in caught if "Traceback of forward call" in str(
        w.message))
    where = ctx.locator.in_text(text) if text else None
    at = f" at {where[0]}:{where[1]}" if where else ""
    return (f"the backward of {op}(){at} returns {'NaN' if kind == 'nan' else 'Inf'}: "
            f"{op}'s derivative is unbounded where its input is 0 (sqrt of a zero distance, "
            "log(0), pow with a fractional exponent at 0); add an epsilon inside "
            f"({op}(x + 1e-12)) or use a safe form (torch.cdist, log1p, clamp_min)", where)


def zero_initialised(ctx: CheckContext) -> list[str]:
    """Weight matrices that are all zeros before training."""
    return [n for n, p in ctx.model.named_parameters()
            if p.requires_grad and p.dim() >= 2 and not bool(p.detach().ne(0).any())]


def replaced_in_forward(ctx: CheckContext, names: list[str]) -> tuple[str, Location | None] | None:
    """A parameter the training forward replaces with a new one (the optimizer keeps the
    old one, which never gets a gradient)."""
    model = ctx.fresh_copy().train()
    before = side_effects.record_state(model)
    inputs, target = _step_args(ctx)
    ctx.training_loss(model, inputs, target)
    after = side_effects.record_state(model)
    replaced = [s for s in side_effects.changed(before, after)
                if s.kind == "parameter" and f"{s.module}.{s.key}".strip(".") in names
                and before.values.get(s) is not after.values.get(s)]
    if not replaced:
        return None
    slot = replaced[0]
    owner = before.owners[slot]
    targets = {(id(owner), slot.key): slot.label}
    with side_effects.watching_assignments(targets, ctx) as found, contextlib.suppress(
            Exception):
        ctx.training_loss(model, inputs, target)
    where = found.get(slot.label)
    at = f" at {where[0]}:{where[1]}" if where else ""
    return (f"forward() assigns a new nn.Parameter to {slot.label} on every call{at}, so the "
            "optimizer holds the first one, which never gets a gradient (and state_dict "
            "changes with every call): create it once in __init__", where)
