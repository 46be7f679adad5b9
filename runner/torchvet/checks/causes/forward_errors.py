"""Why a forward pass raised: the cause behind torch's message.

torch reports where a bad tensor finally broke ("mat1 and mat2 shapes cannot be
multiplied", "index out of range in self"), rarely where it went wrong. The forward is
replayed with its layers and ops watched, and the first cause found is named with its
line: a layer fed channels-last images, token ids beyond an Embedding, the batch
dimension flattened away, a tensor of another dtype kept in the model, or a warning torch
raised on the way (``x.T`` on a 3-D tensor). forward.runs and data.model_fit share it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from ...unit import optrace
from ...unit.context import CheckContext
from ...unit.inputs import Inputs
from ...unit.seeding import derived_seed, seed_everything
from ...unit.text import dtype_name, shape_str
from ...verdict import Location
from ..shared.forward_warnings import capture_warnings

CONV: dict[type[nn.Module], int] = {nn.Conv1d: 1, nn.Conv2d: 2, nn.Conv3d: 3}
DTYPE_WORDS = ("dtype", "Double", "Float", "Half", "BFloat16", "scalar type")


@dataclass
class Cause:
    text: str
    where: Location
    certain: bool = True  # False: a lead (a warning raised before the error), not proof

    def phrase(self) -> str:
        return f"the cause: {self.text}" if self.certain else self.text


def explain(ctx: CheckContext, inputs: Inputs, error: BaseException) -> Cause | None:
    """The cause of ``error``, raised by the eval forward on ``inputs``, if one is found."""
    model = ctx.model.eval()
    batch = inputs.batch_size() or 0
    layer: list[Cause] = []
    with watch_layers(ctx, model, layer), capture_warnings(ctx) as caught:
        _replay(ctx, model, inputs, batch)
    if layer:
        return layer[0]
    tracer = optrace.OpTracer(batch_flattened(batch), ctx.locator)
    with tracer:  # apart: under a mode, a warning's stack level lands in the tracer
        _replay(ctx, model, inputs, batch)
    if tracer.found is not None:
        return Cause(tracer.found[0], tracer.found[1])
    if any(word in str(error) for word in DTYPE_WORDS):
        foreign = foreign_dtype(ctx, model)
        if foreign is not None:
            return foreign
    located = [w for w in caught if w.where is not None]
    if located:
        first = located[0]
        where = first.where
        assert where is not None
        return Cause(f"torch warned first, at {where[0]}:{where[1]}: {first.message}", where,
                     certain=False)
    return None


def _replay(ctx: CheckContext, model: nn.Module, inputs: Inputs, batch: int) -> None:
    seed_everything(derived_seed(ctx.seed, "eval", batch, 0))
    with torch.no_grad(), contextlib.suppress(Exception):
        ctx.call(model, inputs)


# --------------------------------------------------------------------------- layers


@contextlib.contextmanager
def watch_layers(ctx: CheckContext, model: nn.Module, found: list[Cause]) -> Iterator[None]:
    """Pre-hooks that test what each Conv and Embedding layer is fed."""
    names = {id(m): n for n, m in model.named_modules()}

    def pre_hook(module: nn.Module, args: tuple[Any, ...]) -> None:
        x = args[0] if args and isinstance(args[0], torch.Tensor) else None
        if found or x is None:
            return
        name = names.get(id(module), "")
        reason = _channels_last(module, x) or _ids_beyond(module, x)
        if reason:
            label = f"self.{name}" if name else "the model"
            found.append(Cause(f"{label} ({reason})", ctx.locator.for_path(model, name)
                               or ctx.where_model()))

    handles = [m.register_forward_pre_hook(pre_hook) for m in model.modules()
               if isinstance(m, (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Embedding,
                                 nn.EmbeddingBag))]
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()


def _channels_last(module: nn.Module, x: torch.Tensor) -> str | None:
    dims = next((d for cls, d in CONV.items() if type(module) is cls), None)
    if dims is None or x.dim() != dims + 2:
        return None
    channels = int(getattr(module, "in_channels", 0))
    if x.shape[1] == channels or x.shape[-1] != channels:
        return None
    order = ", ".join(["0", str(dims + 1)] + [str(d) for d in range(1, dims + 1)])
    sample = ", ".join([str(dims)] + [str(d) for d in range(dims)])
    return (f"{type(module).__name__} wants (N, C, ...) with C = {channels}, but is fed "
            f"{shape_str(x.shape)}: channels last, as images decode (H, W, C); permute "
            f"the batch with x.permute({order}), or each sample in the dataset with "
            f"image.permute({sample})")


def _ids_beyond(module: nn.Module, x: torch.Tensor) -> str | None:
    if not isinstance(module, (nn.Embedding, nn.EmbeddingBag)) or x.is_floating_point():
        return None
    if x.numel() == 0:
        return None
    size = module.num_embeddings
    low, high = int(x.min()), int(x.max())
    if low >= 0 and high < size:
        return None
    if high >= size:
        return (f"{type(module).__name__}({size}, {module.embedding_dim}) gets ids up to "
                f"{high}, but its num_embeddings is {size}, so valid ids are 0..{size - 1}: "
                f"ids numbered from 1 need num_embeddings = max id + 1 = {high + 1} (with "
                "padding_idx=0), or a tokenizer whose ids start at 0")
    return (f"{type(module).__name__}({size}, {module.embedding_dim}) gets the negative id "
            f"{low}: map padding to a valid id (e.g. 0 with padding_idx=0)")


# --------------------------------------------------------------------------- ops


def batch_flattened(batch: int) -> optrace.Predicate:
    """A flatten/view/reshape that folds the batch dimension into the features."""

    def predicate(name: str, args: tuple[Any, ...], kwargs: dict[str, Any], out: Any
                  ) -> str | None:
        first = args[0] if args and isinstance(args[0], torch.Tensor) else None
        if (batch < 2 or first is None or first.dim() < 2 or first.shape[0] != batch
                or not isinstance(out, torch.Tensor)):
            return None
        if name in ("flatten", "ravel", "view", "reshape") and out.dim() == 1:
            fix = ("torch.flatten(x, 1) (start_dim=1, as nn.Flatten does)"
                   if name in ("flatten", "ravel") else "x.view(x.shape[0], -1)")
            return (f"{name}() turned {shape_str(first.shape)} into {shape_str(out.shape)}, "
                    f"folding the batch dimension into the features: use {fix}")
        return None

    return predicate


def foreign_dtype(ctx: CheckContext, model: nn.Module) -> Cause | None:
    """A buffer, parameter or tensor attribute of another floating dtype than the rest."""
    expected = ctx.parameters_dtype()
    for name, tensor in [*model.named_buffers(), *model.named_parameters(),
                         *_tensor_attributes(model)]:
        if tensor.is_floating_point() and tensor.dtype != expected:
            return Cause(
                f"{name} is {dtype_name(tensor.dtype)} while the parameters are "
                f"{dtype_name(expected)} (a numpy array becomes float64): create it with "
                f"dtype={dtype_name(expected)} or .to({dtype_name(expected)})",
                ctx.locator.for_path(model, name) or ctx.where_model())
    return None


def _tensor_attributes(model: nn.Module) -> list[tuple[str, torch.Tensor]]:
    found = []
    for prefix, module in model.named_modules():
        for key, value in vars(module).items():
            if isinstance(value, torch.Tensor) and not isinstance(value, nn.Parameter):
                found.append((f"{prefix}.{key}".strip("."), value))
    return found
