"""Does a sample's eval output depend on its batch mates, and which module makes it so?

forward.batch_independence tests the first, a middle and the last sample of a batch of
at least 3: a recurrence that runs along the batch (an LSTM left at batch_first=False)
leaves the first sample clean and taints the later ones. When a sample does depend on
the others, the culprit is looked for in this order: a sequence module that reads the
batch dimension as time, an attention mask laid out (head, batch) where the module
reads (batch, head), and finally the first op that reduces or reshapes across dim 0.
"""

from __future__ import annotations

import traceback
from typing import Any

import torch
from torch import nn

from ...unit import optrace
from ...unit.context import CheckContext
from ...unit.inputs import Inputs
from ...unit.pytree import leaves
from ...unit.seeding import derived_seed, seed_everything
from ...unit.text import shape_str
from ...verdict import Location

MIN_BATCH = 3  # a first, a middle and a last sample


def sample_positions(batch: int) -> list[int]:
    return sorted({0, batch // 2, batch - 1})


def mix_inputs(keep: Inputs, other: Inputs, batch: int, k: int) -> Inputs:
    """Sample ``k`` from ``keep``, the rest from ``other`` (tensors batched along dim 0)."""
    other_tensors = iter([t for _, t in other.tensors()])

    def pick(t: torch.Tensor) -> torch.Tensor:
        o = next(other_tensors)
        if t.dim() >= 1 and t.shape[0] == batch and o.shape == t.shape:
            mixed = o.clone()
            mixed[k] = t[k]
            return mixed
        return t

    return keep.map(pick)


def one_sample(inputs: Inputs, batch: int, k: int) -> Inputs:
    return inputs.map(lambda t: t[k:k + 1] if t.dim() >= 1 and t.shape[0] == batch else t)


def compare_sample(ctx: CheckContext, ref: Any, new: Any, paths: set[str], k: int, j: int
                   ) -> tuple[str, float] | None:
    """(leaf, largest difference) where sample ``k`` of ``ref`` and ``j`` of ``new``
    differ beyond the cross-batch tolerance."""
    new_leaves = dict(leaves(new))
    for path, tensor in leaves(ref):
        if path not in paths or path not in new_leaves or not tensor.is_floating_point():
            continue
        a, b = tensor[k:k + 1], new_leaves[path][j:j + 1]
        if a.shape != b.shape:
            return f"{path}[{k}] changes shape {shape_str(a.shape)} -> {shape_str(b.shape)}", 0.0
        atol, rtol = ctx.tolerance(tensor.dtype, cross_batch=True)
        diff = (a.double() - b.double()).abs()
        allowed = atol + rtol * b.double().abs()
        if bool((diff > allowed).any()) or not bool(torch.isfinite(a).eq(torch.isfinite(b)).all()):
            return f"{path}[{k}]", float(diff.max())
    return None


def gradient_leak(ctx: CheckContext, inputs: Inputs, batch: int, paths: set[str], k: int
                  ) -> str | None:
    """Exact test for float inputs: d(sample k's outputs)/d(other samples) must be 0.
    NaN/Inf gradient entries are not evidence of a dependence (0 * NaN in a backward is
    training.gradients' business), only finite non-zero ones."""
    watched: list[tuple[str, torch.Tensor]] = []
    names = iter([p for p, _ in inputs.tensors()])

    def watch(t: torch.Tensor) -> torch.Tensor:
        name = next(names)
        if t.is_floating_point() and t.dim() >= 1 and t.shape[0] == batch:
            leaf = t.detach().clone().requires_grad_(True)
            watched.append((name, leaf))
            return leaf
        return t

    probe = inputs.map(watch)
    if not watched:
        return None
    seed_everything(derived_seed(ctx.seed, "eval", batch, 0))
    with torch.enable_grad():
        out = ctx.call(ctx.model.eval(), probe)
        total = None
        for path, tensor in leaves(out):
            if path in paths and tensor.is_floating_point() and tensor.requires_grad:
                gen = torch.Generator().manual_seed(derived_seed(ctx.seed, "leak", path))
                weight = torch.randn(tuple(tensor[k:k + 1].shape), generator=gen).to(tensor)
                term = (tensor[k:k + 1] * weight).sum()
                total = term if total is None else total + term
        if total is None:
            return None
        grads = torch.autograd.grad(total, [t for _, t in watched], allow_unused=True)
    for (name, _), grad in zip(watched, grads, strict=False):
        if grad is None:
            continue
        reached = (grad.isfinite() & grad.ne(0)).flatten(1).any(1)
        reached[k] = False
        if bool(reached.any()):
            sample = int(reached.nonzero()[0])
            return (f"the gradient of sample {k}'s outputs reaches input sample {sample} "
                    f"({name}): outputs depend on other samples of the batch")
    return None


# --------------------------------------------------------------------------- culprits

SEQUENCE_MODULES = (nn.RNNBase, nn.MultiheadAttention, nn.TransformerEncoderLayer,
                    nn.TransformerDecoderLayer, nn.TransformerEncoder, nn.TransformerDecoder,
                    nn.Transformer)


def _batch_first(module: nn.Module) -> bool | None:
    if hasattr(module, "batch_first"):
        return bool(module.batch_first)
    for attr in ("self_attn", "layers"):
        inner = getattr(module, attr, None)
        if isinstance(inner, nn.ModuleList) and len(inner):
            inner = inner[0]
        if isinstance(inner, nn.Module):
            return _batch_first(inner)
    return None


def _reads_batch_as_time(module: nn.Module, args: tuple[Any, ...], batch: int) -> str | None:
    x = args[0] if args and isinstance(args[0], torch.Tensor) else None
    if x is None or x.dim() != 3 or _batch_first(module) is not False:
        return None
    if x.shape[0] != batch or x.shape[1] == batch:
        return None
    along = ("runs its recurrence along the batch, so each sample sees the ones before it"
             if isinstance(module, nn.RNNBase) else "attends across the batch")
    return (f"{type(module).__name__} has batch_first=False, so it reads its "
            f"{shape_str(x.shape)} input as (time, batch, features) and {along}: pass "
            "batch_first=True (or feed it x.transpose(0, 1))")


def _mask_order(module: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]
                ) -> str | None:
    if not isinstance(module, nn.MultiheadAttention):
        return None
    mask = kwargs.get("attn_mask", args[5] if len(args) > 5 else None)
    query = args[0] if args else kwargs.get("query")
    heads = module.num_heads
    if not isinstance(mask, torch.Tensor) or not isinstance(query, torch.Tensor):
        return None
    b = query.shape[0] if module.batch_first else query.shape[1]
    if mask.dim() != 3 or heads < 2 or b < 2 or mask.shape[0] != b * heads:
        return None
    by_sample = mask.reshape(b, heads, *mask.shape[1:])
    by_head = mask.reshape(heads, b, *mask.shape[1:])
    if bool((by_head == by_head[:1]).all()) and not bool((by_sample == by_sample[:, :1]).all()):
        return (f"its 3-D attn_mask {shape_str(mask.shape)} is laid out (head, batch) — the "
                ".repeat(num_heads, 1, 1) order — but nn.MultiheadAttention reads it as "
                "(batch, head), so a sample's heads get other samples' masks: build it with "
                "repeat_interleave(num_heads, dim=0)")
    return None


def module_culprit(ctx: CheckContext, inputs: Inputs, batch: int
                   ) -> tuple[str, Location] | None:
    """A sequence module fed the batch as time, or an attention mask in the wrong order."""
    model = ctx.model.eval()
    names = {id(m): n for n, m in model.named_modules()}
    found: list[tuple[str, Location]] = []

    def pre_hook(module: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        if found:
            return
        as_time = _reads_batch_as_time(module, args, batch)
        reason = as_time or _mask_order(module, args, kwargs)
        if reason is None:
            return
        name = names.get(id(module), "")
        where = (ctx.locator.for_path(model, name) if as_time else _call_site(ctx)) or (
            ctx.locator.for_path(model, name))
        found.append((f"{name or 'the model'} ({reason})", where or ctx.where_model()))

    handles = [m.register_forward_pre_hook(pre_hook, with_kwargs=True)
               for m in model.modules() if isinstance(m, SEQUENCE_MODULES)]
    if not handles:
        return None
    try:
        seed_everything(derived_seed(ctx.seed, "eval", batch, 0))
        with torch.no_grad():
            ctx.call(model, inputs)
    except Exception:
        pass
    finally:
        for handle in handles:
            handle.remove()
    return found[0] if found else None


def _call_site(ctx: CheckContext) -> Location | None:
    for frame in reversed(traceback.extract_stack()[:-2]):
        if frame.lineno and ctx.locator.is_project_file(frame.filename):
            return ctx.locator.relative(frame.filename), frame.lineno
    return None


def op_culprit(ctx: CheckContext, inputs: Inputs, batch: int) -> tuple[str, Location] | None:
    """The first op that reduces or reshapes across the batch dimension, by replay."""
    model = ctx.model.eval()

    def run() -> None:
        with torch.no_grad():
            ctx.call(model, inputs)

    return optrace.trace(run, optrace.batch_mixing(batch), ctx.locator)
