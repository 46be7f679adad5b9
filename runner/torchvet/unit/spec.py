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
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, IterableDataset

from ..project.config import DEFAULT_BATCH_SIZE, TRAINING_KINDS, UnitConfig
from .adapters import Adaptation, adapt
from .data_batches import DatasetSource, DatasetTargets, DataSpec
from .inputs import (
    DTYPES,
    CallableSource,
    FixedSource,
    GeneratedSource,
    InputSource,
    TargetSource,
    infer_descriptors,
)
from .recipe import RecipeError, TrainingRecipe, parse_recipe


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
    batch_dim: int | Mapping[str, Mapping[str, int]] | None = None
    output_dtype: Any = None
    frozen: Sequence[str] = ()
    unused: Sequence[str] = ()
    skip: Mapping[str, str] = field(default_factory=dict)
    xfail: Mapping[str, str] = field(default_factory=dict)
    tolerance: Mapping[str, float] | None = None
    batch_size: int | None = None
    timeout: float | None = None
    devices: Sequence[str] | None = None
    training: str | None = None
    ema: Sequence[str] = ()
    # the rest of the user's training step (unit/recipe.py)
    clip_grad_norm: float | None = None
    clip_grad_value: float | None = None
    accumulate: int | None = None
    scheduler: Callable[..., Any] | None = None
    # mixed precision ('bf16', 'fp16', or True for bf16): the step runs under autocast
    # and portability.autocast becomes blocking
    amp: Any = None


SPEC_KEYS = tuple(f.name for f in dataclasses.fields(Spec))
DATASET_KEYS = ("dataset", "batch_size", "num_classes", "collate_fn", "label", "validation",
                "skip", "xfail")


class SpecError(Exception):
    """The factory returned something torchvet cannot use; the message says what to return."""


def parse_dtype(value: Any) -> torch.dtype | None:
    if value is None or isinstance(value, torch.dtype):
        return value
    name = str(value).removeprefix("torch.")
    if name not in DTYPES:
        raise SpecError(f"unknown dtype {value!r}; use e.g. torch.float32 or 'float32'")
    return DTYPES[name]


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
    batch_dim: int | Mapping[str, Mapping[str, int]] | None = None
    output_dtype: torch.dtype | None = None
    frozen: tuple[str, ...] = ()
    unused: tuple[str, ...] = ()
    # "adversarial": a min-max / multi-objective step whose summed loss need not fall
    training: str = "standard"
    # globs of parameters the model's own code updates without gradients (EMA targets)
    ema: tuple[str, ...] = ()
    skip: dict[str, str] = field(default_factory=dict)
    xfail: dict[str, str] = field(default_factory=dict)
    tolerance: dict[str, float] = field(default_factory=dict)
    batch_size: int = DEFAULT_BATCH_SIZE
    timeout: float | None = None
    devices: tuple[str, ...] | None = None
    amp: bool = False
    overfit_max_params: int = 0
    warnings: list[str] = field(default_factory=list)
    # "loss" / "optimizer" -> where they came from (an ecosystem adapter), for messages
    sources: dict[str, str] = field(default_factory=dict)
    recipe: TrainingRecipe = field(default_factory=TrainingRecipe)  # clipping, schedule, ...

    @property
    def has_real_loss(self) -> bool:
        return self.loss is not None or self.step is not None

    def within_overfit_budget(self, trainable_params: int) -> bool:
        """Whether a model with this many trainable parameters gets the one-batch runs
        of training.overfit (``overfit_max_params`` in ``[tool.torchvet]``)."""
        return trainable_params <= self.overfit_max_params


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
    training = str(pick("training", config.training or "standard"))
    if training not in TRAINING_KINDS:
        raise SpecError(
            f"training={training!r} is not one of {', '.join(map(repr, TRAINING_KINDS))}: "
            "declare training='adversarial' for a min-max step whose loss need not fall"
        )
    try:
        recipe = parse_recipe(raw, config)
    except RecipeError as exc:
        raise SpecError(str(exc)) from None
    spec = ModelSpec(
        recipe=recipe,
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
        batch_dim=raw.get("batch_dim", getattr(config, "batch_dim", None)),
        output_dtype=parse_dtype(pick("output_dtype", config.output_dtype)),
        frozen=_as_tuple(raw.get("frozen")) + config.frozen,
        unused=_as_tuple(raw.get("unused")) + config.unused,
        training=training,
        ema=_as_tuple(raw.get("ema")) + config.ema,
        skip={**dict(config.skip), **dict(pick("skip", {}))},
        xfail={**dict(config.xfail), **dict(pick("xfail", {}))},
        tolerance={k: float(v) for k, v in tolerance.items() if k in ("atol", "rtol")},
        batch_size=batch_size,
        timeout=raw.get("timeout"),
        devices=_as_tuple(raw.get("devices")) or None,
        amp=recipe.amp is not None,
        overfit_max_params=config.overfit_max_params,
        warnings=warnings,
    )
    if raw.get("dataset") is not None:
        spec.data = _data_spec(
            raw["dataset"], batch_size, spec.num_classes, config, where="spec 'dataset'"
        )
    if raw.get("target") is not None:
        spec.target = TargetSource(raw["target"], seed)
    declared_inputs = raw.get("inputs") is not None or config.inputs is not None
    adaptation = adapt(model, seed, batch_size, declared_inputs)
    _resolve_inputs(spec, raw.get("inputs"), name, config, seed, adaptation)
    if adaptation is not None:
        merge(spec, adaptation)
    return spec


def _resolve_inputs(
    spec: ModelSpec, declared: Any, name: str, config: UnitConfig, seed: int,
    adaptation: Adaptation | None = None,
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
        source = DatasetSource(spec.data, seed, whole_batch=spec.step is not None)
        spec.inputs = source
        if spec.target is None and spec.step is None:
            spec.target = DatasetTargets(source)
        return
    if adaptation is not None and adaptation.inputs is not None:
        spec.inputs, spec.inferred_inputs = adaptation.inputs, adaptation.inferred_inputs
        return
    inferred = infer_descriptors(model)
    if inferred is None:
        spec.inputs_problem = (
            f"cannot infer inputs for {type(model).__name__}: its first layer is not a "
            "Linear, Conv1d/2d/3d, Embedding or batch-first RNN"
        )
        return
    descriptors, where = inferred
    spec.inputs = GeneratedSource(descriptors, seed, f"inferred from {where}")
    spec.inferred_inputs = True


def merge(spec: ModelSpec, adaptation: Adaptation) -> None:
    """Fill what the spec leaves open with what an adapter found; the user's
    declarations always win (inputs are resolved with the rest of the inputs)."""
    if spec.step is None and spec.loss is None:
        spec.step, spec.loss = adaptation.step, adaptation.loss
        if "loss" in adaptation.sources:
            spec.sources["loss"] = adaptation.sources["loss"]
    if spec.optimizer is None and adaptation.optimizer is not None:
        spec.optimizer = adaptation.optimizer
        spec.sources["optimizer"] = adaptation.sources.get("optimizer", "")
    if spec.num_classes is None and adaptation.num_classes:
        spec.num_classes = adaptation.num_classes


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
        if raw.get("validation") is not None:
            data.validation = _data_spec(raw["validation"], data.batch_size, data.num_classes,
                                         config, where="'validation'")
            data.validation.collate_fn = data.collate_fn
            data.validation.label = data.label
        data.skip = {**dict(config.skip), **dict(raw.get("skip") or {})}
        data.xfail = {**dict(config.xfail), **dict(raw.get("xfail") or {})}
        return data, warnings
    data = _data_spec(obj, batch_size, config.num_classes, config, where="factory")
    data.skip, data.xfail = dict(config.skip), dict(config.xfail)
    return data, warnings


def _data_spec(
    obj: Any, batch_size: int, num_classes: int | None, config: UnitConfig, where: str
) -> DataSpec:
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
