"""What a model is fed: the arguments of one forward call, and where they come from.

A spec declares inputs as a fixed example (re-batched along dim 0), a
``callable(batch_size)``, or descriptors (``[tool.torchvet.models.x] inputs``); without
any, they are inferred from the model's first layer. Each source makes deterministic
inputs for a batch size and a *variant* (variant 0 is the standard batch; others are
different but plausible samples). Targets for a loss come the same way. A dataset is a
source too: :class:`torchvet.unit.data_batches.DatasetSource`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from .pytree import leaves, map_tensors
from .seeding import derived_seed, seed_everything
from .text import dtype_name

DTYPES = {
    "float16": torch.float16, "half": torch.float16, "bfloat16": torch.bfloat16,
    "float32": torch.float32, "float": torch.float32, "float64": torch.float64,
    "double": torch.float64, "int8": torch.int8, "uint8": torch.uint8, "int16": torch.int16,
    "int32": torch.int32, "int": torch.int32, "int64": torch.int64, "long": torch.int64,
    "bool": torch.bool, "complex64": torch.complex64, "complex128": torch.complex128,
}


@dataclass
class Inputs:
    """Positional and keyword arguments for one forward call."""

    args: tuple[Any, ...]
    kwargs: dict[str, Any]

    @classmethod
    def from_user(cls, value: Any) -> Inputs:
        if isinstance(value, Inputs):
            return value
        if isinstance(value, torch.Tensor):
            return cls((value,), {})
        if isinstance(value, tuple) and not hasattr(value, "_fields"):
            return cls(value, {})
        if isinstance(value, list):
            return cls(tuple(value), {})
        if isinstance(value, Mapping):
            return cls((), dict(value))
        return cls((value,), {})

    def user_form(self) -> Any:
        """The shape a ``step(model, inputs)`` callable expects: how it was declared."""
        if not self.args:
            return dict(self.kwargs)
        if len(self.args) == 1 and not self.kwargs:
            return self.args[0]
        return self.args

    def map(self, fn: Callable[[torch.Tensor], Any]) -> Inputs:
        return Inputs(map_tensors(self.args, fn), map_tensors(self.kwargs, fn))

    def tensors(self) -> list[tuple[str, torch.Tensor]]:
        found = leaves(self.args, "args") if self.args else []
        return found + (leaves(self.kwargs, "kwargs") if self.kwargs else [])

    def batch_size(self) -> int | None:
        for _, tensor in self.tensors():
            if tensor.dim() >= 1:
                return int(tensor.shape[0])
        return None

    def describe(self) -> str:
        parts = [f"{path}: {tuple(t.shape)} {dtype_name(t.dtype)}" for path, t in self.tensors()]
        return ", ".join(parts) or "no tensors"


def _generator(*parts: object) -> torch.Generator:
    return torch.Generator().manual_seed(derived_seed(*parts))


def select_batch(value: Any, batch_size: int, base: int) -> Any:
    """Take ``batch_size`` samples from every tensor whose dim 0 is ``base`` (cycling)."""
    index = torch.arange(batch_size) % base

    def pick(t: torch.Tensor) -> torch.Tensor:
        if t.dim() >= 1 and t.shape[0] == base:
            return t[index.to(t.device)] if batch_size != base else t
        return t

    return map_tensors(value, pick)


def perturb(value: Any, generator: torch.Generator) -> Any:
    """Different but plausible samples: floats re-drawn around their statistics, integers
    re-drawn in their observed range, booleans (masks) kept."""

    def redraw(t: torch.Tensor) -> torch.Tensor:
        if t.is_floating_point():
            flat = t.detach().float()
            std = float(flat.std()) if flat.numel() > 1 else 1.0
            mean = float(flat.mean()) if flat.numel() else 0.0
            noise = torch.randn(t.shape, generator=generator)
            return (noise * (std or 1.0) + mean).to(t.dtype)
        if t.dtype == torch.bool or t.numel() == 0:
            return t
        low, high = int(t.min()), int(t.max()) + 1
        if high - low < 2:
            return t
        return torch.randint(low, high, t.shape, generator=generator, dtype=t.dtype)

    return map_tensors(value, redraw)


# --------------------------------------------------------------------------- sources


class InputSource:
    """Where a model's inputs come from; ``make`` is deterministic in its arguments."""

    description = ""

    def make(self, batch_size: int, variant: int = 0) -> Inputs:
        raise NotImplementedError


class CallableSource(InputSource):
    """``inputs=callable(batch_size)``: called with torch/random/numpy seeded per call."""

    def __init__(self, fn: Callable[[int], Any], seed: int, what: str = "inputs") -> None:
        self.fn, self.seed = fn, seed
        self.description = f"{what} from {getattr(fn, '__qualname__', repr(fn))}(batch_size)"

    def make(self, batch_size: int, variant: int = 0) -> Inputs:
        seed_everything(derived_seed(self.seed, "callable", batch_size, variant))
        return Inputs.from_user(self.fn(batch_size))


class FixedSource(InputSource):
    """A fixed example, re-batched along dim 0; variants perturb it."""

    def __init__(self, value: Any, seed: int, description: str) -> None:
        self.value = Inputs.from_user(value)
        self.base = self.value.batch_size() or 1
        self.seed = seed
        self.description = description

    def make(self, batch_size: int, variant: int = 0) -> Inputs:
        inputs = Inputs(
            select_batch(self.value.args, batch_size, self.base),
            select_batch(self.value.kwargs, batch_size, self.base),
        )
        if variant:
            gen = _generator(self.seed, "perturb", batch_size, variant)
            inputs = Inputs(perturb(inputs.args, gen), perturb(inputs.kwargs, gen))
        return inputs


def _random_tensor(desc: Mapping[str, Any], batch_size: int, gen: torch.Generator) -> torch.Tensor:
    shape = (batch_size, *[(s if s is not None else 8) for s in desc["shape"]])
    # descriptor dtypes are validated where they are read (project.config, or inference)
    declared = desc.get("dtype") or "float32"
    dtype = declared if isinstance(declared, torch.dtype) else DTYPES[
        str(declared).removeprefix("torch.")]
    if "fill" in desc:
        return torch.full(shape, desc["fill"], dtype=dtype)
    if dtype == torch.bool:
        return torch.rand(shape, generator=gen) > 0.5
    if dtype.is_floating_point or dtype.is_complex:
        low, high = desc.get("low"), desc.get("high")
        if low is not None and high is not None:
            return (torch.rand(shape, generator=gen) * (high - low) + low).to(dtype)
        return torch.randn(shape, generator=gen).to(dtype)
    low = int(desc.get("low", 0))
    high = int(desc.get("high", low + 2))
    return torch.randint(low, high, shape, generator=gen, dtype=dtype)


class GeneratedSource(InputSource):
    """Random tensors from descriptors (``[tool.torchvet.models.x] inputs`` or inference)."""

    def __init__(self, descriptors: Mapping[str, Any], seed: int, description: str) -> None:
        self.args = list(descriptors.get("args", []))
        self.kwargs = dict(descriptors.get("kwargs", {}))
        self.seed = seed
        self.description = description

    def make(self, batch_size: int, variant: int = 0) -> Inputs:
        gen = _generator(self.seed, "generated", batch_size, variant)
        return Inputs(
            tuple(_random_tensor(d, batch_size, gen) for d in self.args),
            {k: _random_tensor(d, batch_size, gen) for k, d in self.kwargs.items()},
        )


# --------------------------------------------------------------------------- inference

_CONV_SIZES = {1: (32,), 2: (32, 32), 3: (8, 16, 16)}


def infer_descriptors(model: nn.Module) -> tuple[dict[str, Any], str] | None:
    """Inputs guessed from the first layer that holds parameters."""
    layer_types = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Embedding, nn.EmbeddingBag,
                   nn.RNNBase)
    for name, module in model.named_modules():
        if module is model and not isinstance(model, layer_types):
            continue  # a container holding parameters of its own (a cls token, say)
        if not any(True for _ in module.parameters(recurse=False)):
            continue
        where = f"its first layer {name or 'the model itself'} ({type(module).__name__})"
        if isinstance(module, nn.Linear):
            return {"args": [{"shape": (module.in_features,), "dtype": "float32"}]}, where
        if isinstance(module, (nn.Conv1d, nn.Conv2d, nn.Conv3d)):
            dims = {nn.Conv1d: 1, nn.Conv2d: 2, nn.Conv3d: 3}[type(module)]
            shape = (module.in_channels, *_CONV_SIZES[dims])
            return {"args": [{"shape": shape, "dtype": "float32"}]}, where
        if isinstance(module, (nn.Embedding, nn.EmbeddingBag)):
            desc = {"shape": (16,), "dtype": "int64", "low": 0, "high": module.num_embeddings}
            return {"args": [desc]}, where
        if isinstance(module, nn.RNNBase) and module.batch_first:
            return {"args": [{"shape": (8, module.input_size), "dtype": "float32"}]}, where
        return None
    return None


def declare_inputs_hint(name: str, shape: Sequence[int] | None = None) -> str:
    """How to declare inputs; ``shape`` is one that was tried on the model and ran."""
    example = list(shape) if shape else [3, 32, 32]
    batch = ", ".join(str(d) for d in [2, *example])
    return (
        f"declare inputs: return {{\"model\": model, \"inputs\": torch.randn({batch})}} "
        "from the factory (a tuple for several arguments, a dict for keywords, or "
        "callable(batch_size)), set example_inputs on the module, or add to pyproject.toml:\n"
        f"    [tool.torchvet.models.{name}]\n"
        f"    input_shape = {example}   # without the batch dimension"
    )


# --------------------------------------------------------------------------- fitting shapes

IMAGE_SIDES = (32, 64, 224, 256, 28, 128, 384)
SIZE_ATTRS = ("image_size", "img_size", "input_size", "resolution")
LENGTH_ATTRS = ("max_seq_len", "seq_len", "max_len", "block_size", "context_length")
MAX_TRIES = 12


def _ints(value: Any) -> list[int]:
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return [value]
    if isinstance(value, (tuple, list)) and value and all(
            isinstance(v, int) and v > 0 for v in value):
        return [int(v) for v in value]
    return []


def candidate_shapes(model: nn.Module) -> list[tuple[int, ...]]:
    """Shapes (without the batch dim) worth trying on ``model`` when the first-layer
    guess failed: images of the model's declared size (``image_size``, ``img_size``)
    and at multiples of its patch size, in its first conv's channels (else 3, 1), then
    the common sides; sequences of its ``max_seq_len`` when it has a first Linear."""
    attrs: dict[str, list[int]] = {}
    for module in model.modules():
        for attr in (*SIZE_ATTRS, *LENGTH_ATTRS, "patch_size", "in_channels", "channels"):
            if attr not in attrs and _ints(getattr(module, attr, None)):
                attrs[attr] = _ints(getattr(module, attr))
    conv = next((m for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Conv1d,
                                                               nn.Conv3d))), None)
    linear = next((m for m in model.modules() if isinstance(m, nn.Linear)), None)
    channels = [conv.in_channels] if conv is not None else []
    channels += [c for c in (*attrs.get("channels", [])[:1], 3, 1) if c not in channels]
    patch = max(attrs.get("patch_size", [1]))
    sides: list[tuple[int, ...]] = []
    size = next((attrs[a] for a in SIZE_ATTRS if a in attrs), [])
    if size:
        sides.append((size[0], size[-1]))
    for side in IMAGE_SIDES:
        rounded = max(patch, side // patch * patch)
        if (rounded, rounded) not in sides:
            sides.append((rounded, rounded))
    shapes: list[tuple[int, ...]] = []
    if conv is None or isinstance(conv, nn.Conv2d):
        shapes += [(c, *hw) for c in channels[:2] for hw in sides]
    elif isinstance(conv, nn.Conv1d):
        shapes += [(conv.in_channels, side) for side in IMAGE_SIDES]
    length = next((attrs[a][0] for a in LENGTH_ATTRS if a in attrs), None)
    if length and linear is not None:
        shapes.insert(0, (length, linear.in_features))
    return list(dict.fromkeys(shapes))[:MAX_TRIES]


def first_fitting(model: nn.Module, shapes: Sequence[tuple[int, ...]],
                  run: Callable[[torch.Tensor], Any]) -> tuple[int, ...] | None:
    """The first of ``shapes`` whose random float batch of 2 ``run`` (a no-grad eval
    forward) completes on; None when none does."""
    for shape in shapes:
        gen = torch.Generator().manual_seed(0)
        try:
            run(torch.randn((2, *shape), generator=gen))
        except Exception:  # a shape that does not fit: try the next
            continue
        return shape
    return None


def fitting_hint(name: str, model: nn.Module, run: Callable[[torch.Tensor], Any]) -> str:
    """The skip message's advice once inferred inputs failed: a shape that was tried on
    the model and ran, or the shapes tried when none did."""
    shapes = candidate_shapes(model)
    found = first_fitting(model, shapes, run)
    if found is not None:
        return (f"a float input of shape {list(found)} (tried on the model) runs; "
                f"{declare_inputs_hint(name, found)}")
    tried = ", ".join(str(list(s)) for s in shapes[:6])
    return (f"none of the shapes tried ran ({tried}{', ...' if len(shapes) > 6 else ''}): "
            f"the model needs inputs of its own kind; {declare_inputs_hint(name)}")


# --------------------------------------------------------------------------- targets


class TargetSource:
    """Targets matching the inputs' batch size."""

    def __init__(self, value: Any, seed: int) -> None:
        self.value = value
        self.seed = seed

    def make(self, batch_size: int, variant: int = 0) -> Any:
        if callable(self.value) and not isinstance(self.value, torch.Tensor):
            seed_everything(derived_seed(self.seed, "target", batch_size, variant))
            return self.value(batch_size)
        base = next((t.shape[0] for _, t in leaves(self.value) if t.dim() >= 1), 1)
        return select_batch(self.value, batch_size, int(base))


def auto_target(loss: Any, output: torch.Tensor, seed: int, num_classes: int | None) -> Any:
    """A random target for torch's own losses when none is declared (None if unknown)."""
    gen = _generator(seed, "auto-target", tuple(output.shape))
    if isinstance(loss, (nn.CrossEntropyLoss, nn.NLLLoss)) and output.dim() >= 2:
        classes = num_classes or output.shape[1]
        shape = (output.shape[0], *output.shape[2:])
        return torch.randint(0, classes, shape, generator=gen).to(output.device)
    if isinstance(loss, (nn.BCEWithLogitsLoss, nn.BCELoss)):
        return (torch.rand(output.shape, generator=gen) > 0.5).to(output.dtype).to(output.device)
    if isinstance(loss, (nn.MSELoss, nn.L1Loss, nn.SmoothL1Loss, nn.HuberLoss)):
        return torch.randn(output.shape, generator=gen).to(output.dtype).to(output.device)
    return None
