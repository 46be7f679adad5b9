"""What a factory returns, normalised into one shape the checks can rely on.

A model factory returns an ``nn.Module``, a plain ``dict`` or a :class:`Spec`; a dataset
factory returns a ``Dataset``, a ``DataLoader`` or a ``dict``. :func:`normalize_model`
and :func:`normalize_dataset` turn those into :class:`ModelSpec` / :class:`DataSpec`,
merging ``[tool.torchvet]`` settings (the factory's own declaration wins; pyproject fills
the gaps) and resolving where the inputs come from.
"""

from __future__ import annotations

import dataclasses
import difflib
import hashlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from ..project.config import DEFAULT_BATCH_SIZE, UnitConfig
from .pytree import leaves, map_tensors


@dataclass
class Spec:
    """Everything torchvet needs to know about one model (see the README's table).

    Only ``model`` is required. ``inputs`` and ``target`` may be tensors (re-batched
    along dim 0), tuples of positional arguments, dicts of keyword arguments, or
    ``callable(batch_size)`` returning one of those.
    """

    model: Any
    inputs: Any = None
    target: Any = None
    loss: Callable[..., Any] | None = None
    step: Callable[..., Any] | None = None
    optimizer: Callable[..., Any] | None = None
    dataset: Any = None
    num_classes: int | None = None
    output_shape: Sequence[int | None] | None = None
    output_dtype: Any = None
    frozen: Sequence[str] = ()
    unused: Sequence[str] = ()
    skip: Mapping[str, str] = field(default_factory=dict)
    xfail: Mapping[str, str] = field(default_factory=dict)
    tolerance: Mapping[str, float] | None = None
    batch_size: int | None = None
    timeout: float | None = None
    devices: Sequence[str] | None = None


SPEC_KEYS = tuple(f.name for f in dataclasses.fields(Spec))
DATASET_KEYS = ("dataset", "batch_size", "num_classes", "collate_fn", "label", "skip", "xfail")


class SpecError(Exception):
    """The factory returned something torchvet cannot use; the message says what to return."""


class InputsUnavailable(Exception):
    """No inputs could be found or inferred; the message shows how to declare them."""


# --------------------------------------------------------------------------- inputs


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
        parts = [f"{path}: {tuple(t.shape)} {str(t.dtype).replace('torch.', '')}"
                 for path, t in self.tensors()]
        return ", ".join(parts) or "no tensors"


def derived_seed(*parts: object) -> int:
    digest = hashlib.sha256(repr(parts).encode()).digest()
    return int.from_bytes(digest[:6], "big")


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
        from .seeding import seed_everything

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


_DTYPE_NAMES = {
    "float16": torch.float16, "half": torch.float16, "bfloat16": torch.bfloat16,
    "float32": torch.float32, "float": torch.float32, "float64": torch.float64,
    "double": torch.float64, "int8": torch.int8, "uint8": torch.uint8, "int16": torch.int16,
    "int32": torch.int32, "int": torch.int32, "int64": torch.int64, "long": torch.int64,
    "bool": torch.bool, "complex64": torch.complex64, "complex128": torch.complex128,
}


def parse_dtype(value: Any) -> torch.dtype | None:
    if value is None or isinstance(value, torch.dtype):
        return value
    name = str(value).removeprefix("torch.")
    if name not in _DTYPE_NAMES:
        raise SpecError(f"unknown dtype {value!r}; use e.g. torch.float32 or 'float32'")
    return _DTYPE_NAMES[name]


def _random_tensor(desc: Mapping[str, Any], batch_size: int, gen: torch.Generator) -> torch.Tensor:
    shape = (batch_size, *[(s if s is not None else 8) for s in desc["shape"]])
    dtype = parse_dtype(desc.get("dtype", "float32")) or torch.float32
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


def declare_inputs_hint(name: str) -> str:
    return (
        "declare inputs: return {\"model\": model, \"inputs\": torch.randn(2, 3, 32, 32)} "
        "from the factory (a tuple for several arguments, a dict for keywords, or "
        "callable(batch_size)), set example_inputs on the module, or add to pyproject.toml:\n"
        f"    [tool.torchvet.models.{name}]\n"
        "    input_shape = [3, 32, 32]   # without the batch dimension"
    )


# --------------------------------------------------------------------------- targets


def _is_loss_module(loss: Any, *types: type) -> bool:
    return isinstance(loss, types)


class TargetSource:
    """Targets matching the inputs' batch size."""

    def __init__(self, value: Any, seed: int) -> None:
        self.value = value
        self.seed = seed

    def make(self, batch_size: int, variant: int = 0) -> Any:
        if callable(self.value) and not isinstance(self.value, torch.Tensor):
            from .seeding import seed_everything

            seed_everything(derived_seed(self.seed, "target", batch_size, variant))
            return self.value(batch_size)
        base = next((t.shape[0] for _, t in leaves(self.value) if t.dim() >= 1), 1)
        return select_batch(self.value, batch_size, int(base))


def auto_target(loss: Any, output: torch.Tensor, seed: int, num_classes: int | None) -> Any:
    """A random target for torch's own losses when none is declared (None if unknown)."""
    gen = _generator(seed, "auto-target", tuple(output.shape))
    if _is_loss_module(loss, nn.CrossEntropyLoss, nn.NLLLoss) and output.dim() >= 2:
        classes = num_classes or output.shape[1]
        shape = (output.shape[0], *output.shape[2:])
        return torch.randint(0, classes, shape, generator=gen).to(output.device)
    if _is_loss_module(loss, nn.BCEWithLogitsLoss, nn.BCELoss):
        return (torch.rand(output.shape, generator=gen) > 0.5).to(output.dtype).to(output.device)
    if _is_loss_module(loss, nn.MSELoss, nn.L1Loss, nn.SmoothL1Loss, nn.HuberLoss):
        return torch.randn(output.shape, generator=gen).to(output.dtype).to(output.device)
    return None


# --------------------------------------------------------------------------- specs


@dataclass
class DataSpec:
    """A dataset (or a loader's dataset) and how to batch and label it."""

    dataset: Any
    loader: Any = None
    batch_size: int = DEFAULT_BATCH_SIZE
    num_classes: int | None = None
    collate_fn: Callable[..., Any] | None = None
    label: str | int | None = None
    max_samples: int = 256
    skip: dict[str, str] = field(default_factory=dict)
    xfail: dict[str, str] = field(default_factory=dict)


@dataclass
class ModelSpec:
    """A normalised model spec: every field resolved, config merged."""

    model: nn.Module
    inputs: InputSource | None
    inputs_problem: str = ""
    inferred_inputs: bool = False
    target: Any = None  # TargetSource | DatasetTargets
    loss: Callable[..., Any] | None = None
    step: Callable[..., Any] | None = None
    optimizer: Callable[..., Any] | None = None
    data: DataSpec | None = None
    num_classes: int | None = None
    output_shape: tuple[int | None, ...] | None = None
    output_dtype: torch.dtype | None = None
    frozen: tuple[str, ...] = ()
    unused: tuple[str, ...] = ()
    skip: dict[str, str] = field(default_factory=dict)
    xfail: dict[str, str] = field(default_factory=dict)
    tolerance: dict[str, float] = field(default_factory=dict)
    batch_size: int = DEFAULT_BATCH_SIZE
    timeout: float | None = None
    devices: tuple[str, ...] | None = None
    overfit_max_params: int = 0
    warnings: list[str] = field(default_factory=list)

    @property
    def has_real_loss(self) -> bool:
        return self.loss is not None or self.step is not None


def _typo_warnings(keys: Sequence[str], allowed: Sequence[str], what: str) -> list[str]:
    out = []
    for key in keys:
        if key in allowed:
            continue
        hint = difflib.get_close_matches(str(key), list(allowed), n=1)
        suggestion = f" (did you mean {hint[0]!r}?)" if hint else ""
        out.append(
            f"unknown key {key!r} in the {what} returned by the factory{suggestion}; it is "
            f"ignored. Known keys: {', '.join(allowed)}"
        )
    return out


def _as_tuple(value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        return (value,)
    return tuple(str(v) for v in value)


def normalize_model(obj: Any, name: str, config: UnitConfig, seed: int) -> ModelSpec:
    """Turn a model factory's return value into a :class:`ModelSpec`."""
    warnings: list[str] = []
    if isinstance(obj, nn.Module):
        raw: dict[str, Any] = {"model": obj}
    elif isinstance(obj, Spec):
        raw = {f.name: getattr(obj, f.name) for f in dataclasses.fields(Spec)}
    elif isinstance(obj, Mapping):
        raw = dict(obj)
        warnings += _typo_warnings(list(raw), SPEC_KEYS, "dict")
        raw = {k: v for k, v in raw.items() if k in SPEC_KEYS}
    else:
        raise SpecError(
            f"the factory returned {type(obj).__module__}.{type(obj).__qualname__}; a model "
            "factory must return an nn.Module, a dict with a 'model' key, or a torchvet.Spec "
            "(dataset factories belong under [project.entry-points.\"torchvet.datasets\"])"
        )
    model = raw.get("model")
    if not isinstance(model, nn.Module):
        raise SpecError(
            f"the spec's 'model' is {type(model).__name__}, not an nn.Module: return "
            "{'model': MyModel(), ...}"
        )

    def pick(key: str, fallback: Any = None) -> Any:
        value = raw.get(key)
        return fallback if value is None else value

    batch_size = int(pick("batch_size", config.batch_size or DEFAULT_BATCH_SIZE))
    if batch_size < 1:
        raise SpecError(f"batch_size must be at least 1, got {batch_size}")
    tolerance = dict(config.tolerance or {})
    tolerance.update(dict(pick("tolerance", {})))
    unknown_tol = set(tolerance) - {"atol", "rtol"}
    if unknown_tol:
        warnings.append(f"tolerance keys {sorted(unknown_tol)} are ignored: use atol and rtol")
    output_shape = pick("output_shape", config.output_shape)
    spec = ModelSpec(
        model=model,
        inputs=None,
        loss=raw.get("loss"),
        step=raw.get("step"),
        optimizer=raw.get("optimizer"),
        num_classes=pick("num_classes", config.num_classes),
        output_shape=(
            tuple(None if (s is None or s < 0) else int(s) for s in output_shape)
            if output_shape is not None
            else None
        ),
        output_dtype=parse_dtype(pick("output_dtype", config.output_dtype)),
        frozen=_as_tuple(raw.get("frozen")) + config.frozen,
        unused=_as_tuple(raw.get("unused")) + config.unused,
        skip={**dict(config.skip), **dict(pick("skip", {}))},
        xfail={**dict(config.xfail), **dict(pick("xfail", {}))},
        tolerance={k: float(v) for k, v in tolerance.items() if k in ("atol", "rtol")},
        batch_size=batch_size,
        timeout=raw.get("timeout"),
        devices=_as_tuple(raw.get("devices")) or None,
        overfit_max_params=config.overfit_max_params,
        warnings=warnings,
    )
    if raw.get("dataset") is not None:
        spec.data = _data_spec(
            raw["dataset"], batch_size, spec.num_classes, config, where="spec 'dataset'"
        )
    if raw.get("target") is not None:
        spec.target = TargetSource(raw["target"], seed)
    _resolve_inputs(spec, raw.get("inputs"), name, config, seed)
    return spec


def _resolve_inputs(
    spec: ModelSpec, declared: Any, name: str, config: UnitConfig, seed: int
) -> None:
    model = spec.model
    if declared is not None:
        if callable(declared) and not isinstance(declared, (torch.Tensor, nn.Module)):
            spec.inputs = CallableSource(declared, seed)
        else:
            spec.inputs = FixedSource(declared, seed, "the spec's inputs")
        return
    if config.inputs is not None:
        spec.inputs = GeneratedSource(
            config.inputs, seed, f"[tool.torchvet.models.{name}] inputs"
        )
        return
    for attr in ("example_inputs", "example_input_array"):
        value = getattr(model, attr, None)
        if value is not None and not callable(value):
            spec.inputs = FixedSource(value, seed, f"{type(model).__name__}.{attr}")
            return
    if spec.data is not None:
        from .data_batches import DatasetSource, DatasetTargets

        source = DatasetSource(spec.data, seed, whole_batch=spec.step is not None)
        spec.inputs = source
        if spec.target is None and spec.step is None:
            spec.target = DatasetTargets(source)
        return
    inferred = infer_descriptors(model)
    if inferred is None:
        spec.inputs_problem = (
            f"cannot infer inputs for {type(model).__name__}: its first layer is not a "
            f"Linear, Conv1d/2d/3d, Embedding or batch-first RNN; {declare_inputs_hint(name)}"
        )
        return
    descriptors, where = inferred
    spec.inputs = GeneratedSource(descriptors, seed, f"inferred from {where}")
    spec.inferred_inputs = True


def normalize_dataset(obj: Any, config: UnitConfig) -> tuple[DataSpec, list[str]]:
    """Turn a dataset factory's return value into a :class:`DataSpec` (+ warnings)."""
    warnings: list[str] = []
    batch_size = config.batch_size or DEFAULT_BATCH_SIZE
    if isinstance(obj, Mapping):
        raw = dict(obj)
        warnings += _typo_warnings(list(raw), DATASET_KEYS, "dict")
        if raw.get("dataset") is None:
            raise SpecError(
                "the dataset factory returned a dict without 'dataset': return "
                "{'dataset': MyDataset(), 'batch_size': 8, 'num_classes': 10}"
            )
        data = _data_spec(
            raw["dataset"],
            int(raw.get("batch_size") or batch_size),
            raw.get("num_classes") or config.num_classes,
            config,
            where="factory",
        )
        if raw.get("collate_fn") is not None:
            data.collate_fn = raw["collate_fn"]
        if raw.get("label") is not None:
            data.label = raw["label"]
        data.skip = {**dict(config.skip), **dict(raw.get("skip") or {})}
        data.xfail = {**dict(config.xfail), **dict(raw.get("xfail") or {})}
        return data, warnings
    data = _data_spec(obj, batch_size, config.num_classes, config, where="factory")
    data.skip, data.xfail = dict(config.skip), dict(config.xfail)
    return data, warnings


def _data_spec(
    obj: Any, batch_size: int, num_classes: int | None, config: UnitConfig, where: str
) -> DataSpec:
    from torch.utils.data import DataLoader, Dataset, IterableDataset

    if isinstance(obj, DataLoader):
        return DataSpec(
            dataset=obj.dataset,
            loader=obj,
            batch_size=obj.batch_size or batch_size,
            num_classes=num_classes,
            collate_fn=obj.collate_fn,
            label=config.label,
            max_samples=config.max_samples,
        )
    if isinstance(obj, (Dataset, IterableDataset)) or (
        hasattr(obj, "__getitem__") and hasattr(obj, "__len__")
    ):
        return DataSpec(
            dataset=obj,
            batch_size=batch_size,
            num_classes=num_classes,
            label=config.label,
            max_samples=config.max_samples,
        )
    raise SpecError(
        f"the {where} returned {type(obj).__qualname__}: a dataset must be a "
        "torch.utils.data.Dataset (or anything with __getitem__ and __len__), a DataLoader, "
        "or a dict {'dataset': ..., 'batch_size': ..., 'num_classes': ...}"
    )
