"""A unit's snapshot, computed in its worker: what the ``regression.*`` checks compare
and ``torchvet snapshot`` writes (:mod:`.store` lays it out). The worker side of the
package: it imports torch and the worker runtime, and the parent never imports it.

- signature: the output leaves' shapes (the batch dim written ``B``, found by running
  two batch sizes) and dtypes, the state_dict's keys, shapes and dtypes per module, the
  forward's parameters and the declared inputs;
- cost, the same on any machine: parameters (total, trainable, per top-level module),
  FLOPs of one forward and one backward at the declared inputs
  (:class:`torch.utils.flop_counter.FlopCounterMode`), and the activation memory as the
  bytes autograd saves for backward (counted by a saved-tensors hook, not by an
  allocator, so it does not depend on the machine's load);
- values: per input and output leaf, summary statistics and a fixed sample of elements;
  per top-level module, statistics of its output and its place in the call order (the
  first module whose output moved is where a change starts).

FLOPs, activation memory and values are keyed by what legitimately changes them, the
torch minor version and the device type (``"torch 2.13 / cpu"``), so a run under
another torch finds its own key or none, never a false difference. Each part is memoised
on the context, so a check computes only the part it compares.
"""

from __future__ import annotations

import inspect
import math
from collections import Counter
from typing import Any

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from ..engine import protocol
from ..unit.context import CheckContext
from ..unit.data_batches import batch_at, dataset_length
from ..unit.pytree import leaves
from ..unit.seeding import derived_seed, seed_everything
from ..unit.text import dtype_name, one_line
from ..verdict import Skip
from .diff import sample_indices
from .store import FORMAT

OWN = "(own)"  # parameters registered on the model itself, in "by_module"
_LITERALS = (type(None), bool, int, float, str)


def values_key(device: torch.device | str) -> str:
    """``torch 2.13 / cpu``: what the measured part of a snapshot is filed under."""
    major, minor = torch.__version__.split("+")[0].split(".")[:2]
    return f"torch {major}.{minor} / {torch.device(device).type}"


# --------------------------------------------------------------------------- digests


def shape_text(shape: tuple[int, ...] | torch.Size, other: tuple[int, ...] | None = None,
               batch: tuple[int, int] | None = None) -> str:
    """``Bx3x32x32``: dims that follow the batch size (seen at two sizes) become ``B``
    (or ``kB``); ``()`` for a scalar."""
    dims = []
    for i, size in enumerate(shape):
        text = str(size)
        if other is not None and batch is not None and i < len(other) and other[i] != size:
            b1, b2 = batch
            k = size // b1 if b1 and size % b1 == 0 else 0
            text = ("B" if k == 1 else f"{k}B") if k and other[i] == k * b2 else "*"
        dims.append(text)
    return "x".join(dims) if dims else "()"


def leaf_signature(found: list[tuple[str, torch.Tensor]],
                   other: list[tuple[str, torch.Tensor]] | None,
                   batch: tuple[int, int]) -> dict[str, str]:
    """Leaf path -> ``"Bx10 float32"``."""
    at_other = dict(other or [])
    out = {}
    for path, tensor in found:
        second = at_other.get(path)
        other_shape = tuple(second.shape) if second is not None else None
        if other_shape is not None and len(other_shape) != tensor.dim():
            other_shape = None
        shape = shape_text(tuple(tensor.shape), other_shape, batch)
        out[path] = f"{shape} {dtype_name(tensor.dtype)}"
    return out


def _round(value: float, digits: int) -> Any:
    if not math.isfinite(value):
        return str(value)  # "nan", "inf", "-inf": JSON has no such numbers
    return float(f"{value:.{digits}g}")


def digest(tensor: torch.Tensor) -> dict[str, Any]:
    """Summary statistics and a fixed sample of a tensor's elements, rounded to what a
    comparison at the dtype's tolerance can use."""
    t = tensor.detach().to("cpu")
    if t.is_complex():
        t = torch.view_as_real(t)
    found: dict[str, Any] = {"shape": shape_text(tuple(t.shape))}
    if t.numel() == 0:
        return found
    exact = not (t.is_floating_point() or t.is_complex())
    digits = 12 if t.dtype == torch.float64 else 8
    values = t.reshape(-1).to(torch.float64)
    finite = values[torch.isfinite(values)]
    found["mean"] = _round(values.mean().item(), digits)
    found["std"] = _round(values.std(correction=0).item() if values.numel() > 1 else 0.0,
                          digits)
    found["min"] = _round(values.min().item(), digits)
    found["max"] = _round(values.max().item(), digits)
    if finite.numel() < values.numel():
        found["nonfinite"] = int(values.numel() - finite.numel())
    picked = values[sample_indices(values.numel())].tolist()
    found["sample"] = [int(v) if exact else _round(v, digits) for v in picked]
    return found


# --------------------------------------------------------------------------- models


def forward_parameters(model: nn.Module) -> list[str] | None:
    """``["x", "mask=None", "**kwargs"]``: the forward's parameters without annotations;
    a default is written only when it is a plain literal (an object's repr holds an
    address that changes every run)."""
    try:
        signature = inspect.signature(model.forward)
    except (TypeError, ValueError):
        return None
    params = []
    for p in signature.parameters.values():
        if p.kind is p.VAR_POSITIONAL:
            params.append(f"*{p.name}")
        elif p.kind is p.VAR_KEYWORD:
            params.append(f"**{p.name}")
        elif p.default is p.empty:
            params.append(p.name)
        elif isinstance(p.default, _LITERALS) and len(repr(p.default)) <= 24:
            params.append(f"{p.name}={p.default!r}")
        else:
            params.append(f"{p.name}=…")
    return params


def state_dict_signature(model: nn.Module) -> tuple[dict[str, dict[str, str]], str]:
    """Per module, its tensors' shapes (and dtypes where they are not the common one)."""
    tensors = {k: v for k, v in model.state_dict().items() if isinstance(v, torch.Tensor)}
    floating = Counter(dtype_name(t.dtype) for t in tensors.values() if t.is_floating_point())
    common = floating.most_common(1)[0][0] if floating else "float32"
    grouped: dict[str, dict[str, str]] = {}
    for key, tensor in tensors.items():
        module, _, name = key.rpartition(".")
        desc = shape_text(tuple(tensor.shape))
        dtype = dtype_name(tensor.dtype)
        grouped.setdefault(module, {})[name] = desc if dtype == common else f"{desc} {dtype}"
    return grouped, common


def _eval_at(ctx: CheckContext, size: int) -> Any:
    """An eval forward at another batch size, not memoised (its failure is
    forward.batch_sizes' verdict, not a snapshot's)."""
    ctx.restore_model()
    seed_everything(derived_seed(ctx.seed, "eval", size, 0))
    with torch.no_grad():
        return ctx.call(ctx.model.eval(), ctx.inputs(size))


def model_signature(ctx: CheckContext) -> dict[str, Any]:
    def compute() -> dict[str, Any]:
        output = ctx.eval_output()
        size = ctx.batch_size
        try:
            other_inputs = ctx.inputs(size + 1).tensors()
            other_outputs = leaves(_eval_at(ctx, size + 1))
        except Exception:  # the batch dim stays concrete; forward.batch_sizes says why
            other_inputs, other_outputs = [], None
        state, common = state_dict_signature(ctx.model)
        signature: dict[str, Any] = {
            "outputs": leaf_signature(leaves(output), other_outputs, (size, size + 1)),
            "inputs": leaf_signature(ctx.inputs().tensors(), other_inputs or None,
                                     (size, size + 1)),
            "dtype": common,
            "state_dict": state,
        }
        forward = forward_parameters(ctx.model)
        if forward is not None:
            signature["forward"] = forward
        return signature

    return ctx.memo(("snapshot", "signature"), compute)


def model_params(ctx: CheckContext) -> dict[str, Any]:
    def compute() -> dict[str, Any]:
        ctx.eval_output()  # lazy modules get their parameters in the first forward
        model = ctx.model
        by_module = {name: sum(p.numel() for p in child.parameters())
                     for name, child in model.named_children()}
        own = sum(p.numel() for p in model._parameters.values() if p is not None)
        if own:
            by_module[OWN] = own
        return {
            "total": sum(p.numel() for p in model.parameters()),
            "trainable": sum(p.numel() for p in model.parameters() if p.requires_grad),
            "by_module": by_module,
        }

    return ctx.memo(("snapshot", "params"), compute)


class _SavedBytes:
    """Bytes autograd saves for backward, each storage once, parameters and buffers not
    counted (they are the model's size, not its activations)."""

    def __init__(self, model: nn.Module) -> None:
        self.skip = {_storage_key(t) for t in [*model.parameters(), *model.buffers()]}
        self.seen: set[Any] = set()
        self.total = 0
        self.kept: list[torch.Tensor] = []  # alive until counted: storage keys stay unique

    def pack(self, tensor: torch.Tensor) -> torch.Tensor:
        key = _storage_key(tensor)
        if key not in self.skip and key not in self.seen:
            self.seen.add(key)
            self.kept.append(tensor)
            self.total += _nbytes(tensor)
        return tensor


def _storage_key(tensor: torch.Tensor) -> Any:
    try:
        return (tensor.device.type, tensor.untyped_storage().data_ptr())
    except Exception:  # no storage (a tensor subclass): counted on its own
        return id(tensor)


def _nbytes(tensor: torch.Tensor) -> int:
    try:
        return int(tensor.untyped_storage().nbytes())
    except Exception:  # no storage: its elements
        return tensor.numel() * tensor.element_size()


def _backward_cost(ctx: CheckContext) -> tuple[int | None, int | None]:
    """(backward FLOPs, bytes saved for backward) of a forward on a copy in train mode
    (eval mode when train mode cannot run on these inputs), or Nones when nothing
    differentiable comes out."""
    for train in (True, False):
        try:
            model = ctx.fresh_copy().train(train)
            saved = _SavedBytes(model)
            seed_everything(derived_seed(ctx.seed, "snapshot-cost"))
            with torch.enable_grad(), torch.autograd.graph.saved_tensors_hooks(
                    saved.pack, lambda t: t):
                output = ctx.call(model, ctx.inputs())
            loss = ctx.surrogate(output)
            with FlopCounterMode(display=False) as counter:
                loss.backward()
            return int(counter.get_total_flops()), saved.total
        except Exception:  # no backward is a fact of the model, not an error
            continue
    return None, None


def model_cost(ctx: CheckContext) -> dict[str, Any]:
    def compute() -> dict[str, Any]:
        ctx.eval_output()
        ctx.restore_model()
        seed_everything(derived_seed(ctx.seed, "eval", ctx.batch_size, 0))
        with FlopCounterMode(display=False) as counter, torch.no_grad():
            ctx.call(ctx.model.eval(), ctx.inputs())
        backward, saved = _backward_cost(ctx)
        ctx.restore_model()
        return {"flops": {"forward": int(counter.get_total_flops()), "backward": backward},
                "activation_bytes": saved}

    return ctx.memo(("snapshot", "cost"), compute)


def model_values(ctx: CheckContext) -> dict[str, Any]:
    def compute() -> dict[str, Any]:
        values = {"inputs": {p: digest(t) for p, t in ctx.inputs().tensors()},
                  "outputs": {p: digest(t) for p, t in leaves(ctx.eval_output())}}
        modules = module_digests(ctx)
        if modules:
            values["modules"] = modules
        return values

    return ctx.memo(("snapshot", "values"), compute)


def module_digests(ctx: CheckContext) -> dict[str, Any]:
    """Statistics of each top-level module's first output, with its place in the call
    order: the first module whose output moved is where a change in the outputs starts."""
    found: dict[str, dict[str, Any]] = {}

    def recorder(name: str) -> Any:
        def hook(module: nn.Module, args: Any, output: Any) -> None:
            first = next((t for _, t in leaves(output) if t.is_floating_point()), None)
            if name not in found and first is not None:
                stats = {k: v for k, v in digest(first).items() if k != "sample"}
                found[name] = {"call": len(found), **stats}
        return hook

    ctx.restore_model()
    handles = _hook_children(ctx.model, recorder)
    if handles is None:  # a child that takes no hooks (TorchScript): no module digests
        return {}
    try:
        seed_everything(derived_seed(ctx.seed, "eval", ctx.batch_size, 0))
        with torch.no_grad():
            ctx.call(ctx.model.eval(), ctx.inputs())
    finally:
        for handle in handles:
            handle.remove()
        ctx.restore_model()
    return found


def _hook_children(model: nn.Module, recorder: Any) -> list[Any] | None:
    """A forward hook on each child, or None (and no hook left behind) when one refuses."""
    handles: list[Any] = []
    try:
        for name, child in model.named_children():
            handles.append(child.register_forward_hook(recorder(name)))
    except RuntimeError:  # "register_forward_hook is not supported on ScriptModules"
        for handle in handles:
            handle.remove()
        return None
    return handles


# --------------------------------------------------------------------------- datasets


def _first_batch(ctx: CheckContext, size: int) -> Any:
    assert ctx.data is not None
    seed_everything(derived_seed(ctx.seed, "snapshot-batch", size))
    return batch_at(ctx.data, size, 0)


def dataset_signature(ctx: CheckContext) -> dict[str, Any]:
    def compute() -> dict[str, Any]:
        assert ctx.data is not None
        size = ctx.data.batch_size
        first = leaves(_first_batch(ctx, size), "batch")
        try:
            other = leaves(_first_batch(ctx, size + 1), "batch")
        except Exception:  # too few samples for a second size: dims stay concrete
            other = None
        return {"outputs": leaf_signature(first, other, (size, size + 1)),
                "length": dataset_length(ctx.data.dataset)}

    return ctx.memo(("snapshot", "signature"), compute)


def dataset_values(ctx: CheckContext) -> dict[str, Any]:
    def compute() -> dict[str, Any]:
        assert ctx.data is not None
        batch = _first_batch(ctx, ctx.data.batch_size)
        return {"outputs": {p: digest(t) for p, t in leaves(batch, "batch")}}

    return ctx.memo(("snapshot", "values"), compute)


def signature_of(ctx: CheckContext) -> dict[str, Any]:
    return model_signature(ctx) if ctx.spec is not None else dataset_signature(ctx)


def values_of(ctx: CheckContext) -> dict[str, Any]:
    return model_values(ctx) if ctx.spec is not None else dataset_values(ctx)


# --------------------------------------------------------------------------- the whole


def unit_snapshot(ctx: CheckContext) -> dict[str, Any]:
    """Every part of the unit's snapshot, as :mod:`torchvet.regression.store` writes it."""
    key = values_key(ctx.device)
    snapshot: dict[str, Any] = {
        "torchvet_snapshot": FORMAT,
        "unit": ctx.factory.name,
        "kind": ctx.factory.kind,
        "seed": ctx.seed,
        "signature": signature_of(ctx),
    }
    if ctx.spec is not None:
        snapshot["params"] = model_params(ctx)
        snapshot["measured"] = {key: {**model_cost(ctx), **model_values(ctx)}}
    else:
        snapshot["measured"] = {key: dataset_values(ctx)}
    return snapshot


def snapshot_message(ctx: CheckContext | None, problem: str = "") -> protocol.Snapshot:
    """The unit's snapshot for the parent, or why none could be taken."""
    if ctx is None or problem:
        return protocol.Snapshot(None, problem or "the unit could not be built")
    ctx.current_check = "snapshot"
    try:
        return protocol.Snapshot(unit_snapshot(ctx))
    except Exception as exc:  # the parent reports it for the unit
        why = str(exc) if isinstance(exc, Skip) else one_line(exc)
        return protocol.Snapshot(None, f"the snapshot could not be taken: {why}")
