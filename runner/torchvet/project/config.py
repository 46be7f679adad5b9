"""``[tool.torchvet]`` in the target project's pyproject.toml.

Every key is validated up front: a typo or a wrong type is a :class:`ConfigError`
naming the file and the key (the CLI turns it into exit code 2), never a silently
ignored setting. Keys may be written in snake_case or kebab-case.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from ..errors import UsageError
from .discovery import DiscoveryError, load_project
from .tomlcompat import load_toml

DEFAULT_TIMEOUT = 300.0
DEFAULT_BATCH_SIZE = 2
DEFAULT_OVERFIT_MAX_PARAMS = 5_000_000
DEFAULT_MAX_SAMPLES = 256
# how a model's step trains: "adversarial" is a min-max / multi-objective sum that need
# not fall (GANs), which training.overfit cannot judge
TRAINING_KINDS = ("standard", "adversarial")


class ConfigError(UsageError):
    """Invalid ``[tool.torchvet]`` configuration."""


Validator = Callable[[Any], Any]


def _positive_number(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
        raise TypeError("a positive number")
    return float(value)


def _positive_int(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise TypeError("a positive integer")
    return value


def _int(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError("an integer")
    return value


def _str(value: Any) -> str:
    if not isinstance(value, str):
        raise TypeError("a string")
    return value


def _str_list(value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        return (value,)
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise TypeError("a list of strings")
    return tuple(value)


def _reasons(value: Any) -> dict[str, str]:
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return {v: "declared in [tool.torchvet]" for v in value}
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        raise TypeError('a table of check = "reason" (or a list of check ids)')
    return {str(k): v for k, v in value.items()}


def _tolerance(value: Any) -> dict[str, float]:
    if not isinstance(value, dict) or not value:
        raise TypeError("a table like {atol = 1e-5, rtol = 1e-4}")
    out = {}
    for key, number in value.items():
        if key not in ("atol", "rtol"):
            raise TypeError(f"a table with only atol/rtol (got {key!r})")
        if isinstance(number, bool) or not isinstance(number, (int, float)) or number < 0:
            raise TypeError(f"a table of non-negative numbers ({key} = {number!r})")
        out[key] = float(number)
    return out


def _shape(value: Any) -> tuple[int | None, ...]:
    if not isinstance(value, list) or not all(
        (isinstance(v, int) and not isinstance(v, bool)) for v in value
    ):
        raise TypeError("a list of integers (use -1 for any size)")
    return tuple(None if v < 0 else v for v in value)


def _budgets(value: Any) -> dict[str, float]:
    if not isinstance(value, dict) or not all(
        isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0
        for v in value.values()
    ):
        raise TypeError('a table of check = seconds, e.g. { "training.overfit" = 300 }')
    return {str(k): float(v) for k, v in value.items()}


def _training(value: Any) -> str:
    if value not in TRAINING_KINDS:
        raise TypeError(" or ".join(f'"{kind}"' for kind in TRAINING_KINDS))
    return str(value)


def _amp(value: Any) -> str:
    if value not in ("bf16", "fp16"):
        raise TypeError('"bf16" or "fp16"')
    return str(value)


def _batch_dim(value: Any) -> int | dict[str, dict[str, int]]:
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    if isinstance(value, Mapping) and set(value) <= {"input", "output"} and all(
            isinstance(table, Mapping) and all(
                isinstance(d, int) and not isinstance(d, bool) and d >= 0
                for d in table.values()) for table in value.values()):
        return {side: dict(table) for side, table in value.items()}
    raise TypeError('a dim (0, 1, ...) or {input = {leaf = dim}, output = {leaf = dim}}')


def _bool(value: Any) -> bool:
    if not isinstance(value, bool):
        raise TypeError("true or false")
    return value


def _fail_on(value: Any) -> str:
    if value not in ("failure", "warning", "never"):
        raise TypeError('one of "failure", "warning", "never"')
    return str(value)


def _label(value: Any) -> str | int:
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise TypeError("a sample key (string) or a tuple index (integer)")
    return value


_DTYPES = {
    "float16", "half", "bfloat16", "float32", "float", "float64", "double",
    "int8", "uint8", "int16", "int32", "int", "int64", "long", "bool",
    "complex64", "complex128",
}


def _dtype(value: Any) -> str:
    if not isinstance(value, str) or value.removeprefix("torch.") not in _DTYPES:
        raise TypeError(f"a dtype name ({', '.join(sorted(_DTYPES))})")
    return value.removeprefix("torch.")


def _tensor_descriptor(value: Any) -> dict[str, Any]:
    if isinstance(value, list):
        return {"shape": _shape(value), "dtype": "float32"}
    if not isinstance(value, dict) or "shape" not in value:
        raise TypeError(
            "a per-sample shape like [3, 32, 32] or a table like "
            '{shape = [16], dtype = "int64", high = 1000}'
        )
    unknown = set(value) - {"shape", "dtype", "low", "high", "fill"}
    if unknown:
        raise TypeError(
            f"a tensor table with keys shape/dtype/low/high/fill (got {sorted(unknown)})"
        )
    out: dict[str, Any] = {
        "shape": _shape(value["shape"]),
        "dtype": _dtype(value.get("dtype", "float32")),
    }
    for key in ("low", "high", "fill"):
        if key in value:
            if isinstance(value[key], bool) or not isinstance(value[key], (int, float)):
                raise TypeError(f"{key} must be a number")
            out[key] = value[key]
    return out


def _inputs(value: Any) -> dict[str, Any]:
    if isinstance(value, list) and all(isinstance(v, int) for v in value):
        return {"args": [_tensor_descriptor(value)], "kwargs": {}}
    if isinstance(value, list) and value and all(isinstance(v, (list, dict)) for v in value):
        return {"args": [_tensor_descriptor(v) for v in value], "kwargs": {}}
    if isinstance(value, dict) and "shape" in value:
        return {"args": [_tensor_descriptor(value)], "kwargs": {}}
    if isinstance(value, dict) and value:
        return {"args": [], "kwargs": {str(k): _tensor_descriptor(v) for k, v in value.items()}}
    raise TypeError(
        "a list of per-argument tensors ([[3, 32, 32]]) or a table of keyword tensors "
        '({input_ids = {shape = [16], dtype = "int64", high = 1000}})'
    )


_COMMON: dict[str, tuple[Validator, str]] = {
    "timeout": (_positive_number, "seconds before the unit's worker is killed (default 300)"),
    "batch_size": (_positive_int, "batch size for the checks (default 2)"),
    "checks": (_str_list, "check ids, areas or globs to run (default: the default catalogue)"),
    "skip": (_reasons, '{check_or_glob = "reason"}: checks to skip'),
    "xfail": (_reasons, '{check_or_glob = "reason"}: checks expected to fail'),
    "num_classes": (_positive_int, "label range [0, num_classes) for classification data"),
    "max_samples": (_positive_int, "samples scanned by the data checks (default 256)"),
    "budgets": (_budgets, "{check_or_glob = seconds}: time budgets past which checks stop"),
}

_MODEL_ONLY: dict[str, tuple[Validator, str]] = {
    "inputs": (_inputs, "input tensors per argument / keyword, shapes without the batch dim"),
    "input_shape": (_shape, "shape of the single input without the batch dim"),
    "input_dtype": (_dtype, "dtype of the single input (default float32)"),
    "output_shape": (_shape, "expected shape of the first output tensor; -1 = any size"),
    "output_dtype": (_dtype, "expected dtype of the floating outputs"),
    "frozen": (_str_list, "globs of parameters expected to stay frozen"),
    "unused": (_str_list, "globs of parameters expected to get no gradient"),
    "ema": (_str_list, "globs of parameters the model's own code updates without gradients"),
    "training": (_training, '"adversarial" for a min-max step whose loss need not fall'),
    "tolerance": (_tolerance, "{atol, rtol} for output comparisons"),
    "overfit_max_params": (_positive_int, "parameter budget above which training.overfit skips"),
    "dataset": (_str, "name of a torchvet.datasets factory to feed this model"),
    "cost_threshold": (_positive_number, "share of change in parameters, FLOPs or activation "
                       "memory past which regression.cost warns (default 0.05)"),
    # the rest of the training step, as the project's script takes it
    "clip_grad_norm": (_positive_number, "max gradient norm the training step clips to"),
    "clip_grad_value": (_positive_number, "max absolute gradient value the step clips to"),
    "accumulate": (_positive_int, "micro-batches accumulated per optimizer step"),
    "amp": (_amp, '"bf16" or "fp16": the training step runs under autocast'),
    "batch_dim": (_batch_dim, "where the batch lives, for all leaves or per input/output leaf"),
}

_DATASET_ONLY: dict[str, tuple[Validator, str]] = {
    "label": (_label, "where the label is in a sample: a dict key or a tuple index"),
}

GLOBAL_KEYS: dict[str, tuple[Validator, str]] = {
    **_COMMON,
    **_MODEL_ONLY,
    **_DATASET_ONLY,
    "seed": (_int, "seed for torch, random and numpy (default 0)"),
    "fail_on": (_fail_on, '"failure" (default), "warning" or "never"'),
    "jobs": (_positive_int, "models checked at once (default: number of cores)"),
    "pytest": (_bool, "add the checks to every pytest run as items (default false: "
                      "only with pytest --torchvet)"),
}
MODEL_KEYS: dict[str, tuple[Validator, str]] = {**_COMMON, **_MODEL_ONLY}
DATASET_KEYS: dict[str, tuple[Validator, str]] = {**_COMMON, **_DATASET_ONLY}
_GLOBAL_ONLY_KEYS = {"seed", "fail_on", "jobs", "pytest"}


@dataclass(frozen=True)
class UnitConfig:
    """Effective settings for one model or dataset: global defaults, then its table."""

    timeout: float = DEFAULT_TIMEOUT
    batch_size: int | None = None
    checks: tuple[str, ...] = ()
    skip: Mapping[str, str] = field(default_factory=dict)
    xfail: Mapping[str, str] = field(default_factory=dict)
    num_classes: int | None = None
    max_samples: int = DEFAULT_MAX_SAMPLES
    budgets: Mapping[str, float] = field(default_factory=dict)
    inputs: Mapping[str, Any] | None = None
    output_shape: tuple[int | None, ...] | None = None
    output_dtype: str | None = None
    frozen: tuple[str, ...] = ()
    unused: tuple[str, ...] = ()
    ema: tuple[str, ...] = ()
    training: str | None = None
    tolerance: Mapping[str, float] | None = None
    overfit_max_params: int = DEFAULT_OVERFIT_MAX_PARAMS
    dataset: str | None = None
    label: str | int | None = None
    cost_threshold: float = 0.05
    clip_grad_norm: float | None = None
    clip_grad_value: float | None = None
    accumulate: int | None = None
    amp: str | None = None
    batch_dim: int | Mapping[str, Mapping[str, int]] | None = None


@dataclass
class Config:
    """Validated ``[tool.torchvet]``: global settings plus per-unit tables."""

    source: str = "pyproject.toml"
    seed: int | None = None
    fail_on: str | None = None
    jobs: int | None = None
    pytest: bool = False
    defaults: dict[str, Any] = field(default_factory=dict)
    models: dict[str, dict[str, Any]] = field(default_factory=dict)
    datasets: dict[str, dict[str, Any]] = field(default_factory=dict)

    def for_unit(self, kind: str, name: str, overrides: Mapping[str, Any] | None = None
                 ) -> UnitConfig:
        """Settings for one unit: global table, then command-line ``overrides``, then the
        unit's own table (a per-model timeout beats a global --timeout)."""
        tables = self.models if kind == "model" else self.datasets
        allowed = MODEL_KEYS if kind == "model" else DATASET_KEYS
        merged = {k: v for k, v in self.defaults.items() if k in allowed}
        merged.update({k: v for k, v in (overrides or {}).items() if v is not None})
        merged.update(tables.get(name, {}))
        return replace(UnitConfig(), **_to_unit_fields(merged))

    def unknown_units(self, models: set[str], datasets: set[str]) -> list[str]:
        """Tables naming units that discovery did not find (likely typos)."""
        stale = [f"models.{n}" for n in self.models if n not in models]
        return stale + [f"datasets.{n}" for n in self.datasets if n not in datasets]


def _to_unit_fields(values: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(values)
    shape = out.pop("input_shape", None)
    dtype = out.pop("input_dtype", None)
    if shape is not None and "inputs" not in out:
        out["inputs"] = {"args": [{"shape": shape, "dtype": dtype or "float32"}], "kwargs": {}}
    return out


def _normalise_key(key: str) -> str:
    return key.replace("-", "_")


def _validate_table(
    table: Any, allowed: Mapping[str, tuple[Validator, str]], where: str, source: str
) -> dict[str, Any]:
    if not isinstance(table, dict):
        raise ConfigError(f"{source}: [{where}] must be a table")
    out: dict[str, Any] = {}
    for raw_key, value in table.items():
        key = _normalise_key(str(raw_key))
        if key not in allowed:
            hint = difflib.get_close_matches(key, list(allowed), n=1)
            suggestion = f" (did you mean {hint[0]!r}?)" if hint else ""
            raise ConfigError(
                f"{source}: [{where}] unknown key {raw_key!r}{suggestion}; "
                f"valid keys: {', '.join(sorted(allowed))}"
            )
        validator, _ = allowed[key]
        try:
            out[key] = validator(value)
        except TypeError as exc:
            raise ConfigError(
                f"{source}: [{where}] {raw_key} = {value!r} is invalid: expected {exc}"
            ) from None
    if "input_dtype" in out and "input_shape" not in out:
        raise ConfigError(
            f"{source}: [{where}] input_dtype needs input_shape too "
            "(e.g. input_shape = [16], input_dtype = \"int64\")"
        )
    if "inputs" in out and "input_shape" in out:
        raise ConfigError(f"{source}: [{where}] set either inputs or input_shape, not both")
    return out


def parse_config(data: Mapping[str, Any], source: str = "pyproject.toml") -> Config:
    """Validate the ``[tool.torchvet]`` table of a parsed pyproject."""
    tool = data.get("tool", {})
    table = tool.get("torchvet", {}) if isinstance(tool, dict) else {}
    if not isinstance(table, dict):
        raise ConfigError(f"{source}: [tool.torchvet] must be a table")
    table = dict(table)
    models_table = table.pop("models", {})
    datasets_table = table.pop("datasets", {})
    defaults = _validate_table(table, GLOBAL_KEYS, "tool.torchvet", source)
    config = Config(source=source)
    config.seed = defaults.pop("seed", None)
    config.fail_on = defaults.pop("fail_on", None)
    config.jobs = defaults.pop("jobs", None)
    config.pytest = defaults.pop("pytest", False)
    config.defaults = defaults
    for attr, raw, allowed in (
        ("models", models_table, MODEL_KEYS),
        ("datasets", datasets_table, DATASET_KEYS),
    ):
        if not isinstance(raw, dict):
            raise ConfigError(f"{source}: [tool.torchvet.{attr}] must be a table of tables")
        units = {
            str(name): _validate_table(sub, allowed, f"tool.torchvet.{attr}.{name}", source)
            for name, sub in raw.items()
        }
        setattr(config, attr, units)
    return config


def load_config(pyproject: Path | None, data: Mapping[str, Any] | None = None) -> Config:
    """Config of a project; an absent pyproject gives the defaults."""
    if pyproject is None:
        return Config()
    if data is None:
        try:
            data = load_toml(pyproject)
        except ValueError as exc:
            raise ConfigError(f"{pyproject}: invalid TOML: {exc}") from None
    return parse_config(data, str(pyproject))


def declared_fail_on(path: str | os.PathLike[str]) -> str | None:
    """``[tool.torchvet] fail_on`` of the project at ``path``; None where it declares
    none or cannot be read (the run that reads it reports that problem itself)."""
    try:
        project = load_project(path)
        return load_config(project.pyproject, project.data).fail_on
    except (ConfigError, DiscoveryError, OSError):
        return None
