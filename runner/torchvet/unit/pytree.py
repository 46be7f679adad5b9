"""Model inputs and outputs as trees of tensors.

Containers: tuples, lists, namedtuples, dicts (HF ``ModelOutput`` included, which is a
dict and a dataclass at once) and dataclasses. Every leaf gets a readable path such as
``out["logits"]``, ``out[0]`` or ``out.aux_logits`` so verdicts can name it.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import torch

Leaf = tuple[str, torch.Tensor]


def _is_namedtuple(obj: Any) -> bool:
    return isinstance(obj, tuple) and hasattr(obj, "_fields")


def _children(obj: Any) -> Iterator[tuple[str, Any]] | None:
    """(path suffix, child) pairs, or None for a leaf/scalar."""
    if isinstance(obj, Mapping):
        is_attr_style = dataclasses.is_dataclass(obj)
        return (
            ((f".{k}" if is_attr_style else f"[{k!r}]".replace("'", '"')), v)
            for k, v in obj.items()
        )
    if _is_namedtuple(obj):
        return ((f".{name}", getattr(obj, name)) for name in obj._fields)
    if isinstance(obj, (tuple, list)):
        return ((f"[{i}]", v) for i, v in enumerate(obj))
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return ((f".{f.name}", getattr(obj, f.name)) for f in dataclasses.fields(obj))
    return None


def leaves(obj: Any, prefix: str = "out") -> list[Leaf]:
    """Every tensor in ``obj`` with its path, in a stable order."""
    if isinstance(obj, torch.Tensor):
        return [(prefix, obj)]
    children = _children(obj)
    if children is None:
        return []
    found: list[Leaf] = []
    for suffix, child in children:
        found.extend(leaves(child, prefix + suffix))
    return found


def floating_leaves(obj: Any, prefix: str = "out") -> list[Leaf]:
    return [(p, t) for p, t in leaves(obj, prefix) if t.is_floating_point() or t.is_complex()]


_PRIMARY_KEYS = ("logits", "out", "output", "outputs", "prediction", "predictions", "y_hat")


def primary_leaf(obj: Any, prefix: str = "out") -> Leaf | None:
    """The output a user means by "the output": ``logits``-like key, else the first
    floating tensor with at least one dimension."""
    if isinstance(obj, torch.Tensor):
        return (prefix, obj)
    candidates = [(p, t) for p, t in floating_leaves(obj, prefix) if t.dim() >= 1]
    for key in _PRIMARY_KEYS:
        for path, tensor in candidates:
            if path in (f'{prefix}["{key}"]', f"{prefix}.{key}"):
                return path, tensor
    return candidates[0] if candidates else None


def map_tensors(obj: Any, fn: Callable[[torch.Tensor], Any]) -> Any:
    """A copy of ``obj`` with ``fn`` applied to every tensor; containers keep their type."""
    if isinstance(obj, torch.Tensor):
        return fn(obj)
    if isinstance(obj, Mapping):
        mapped = {k: map_tensors(v, fn) for k, v in obj.items()}
        if dataclasses.is_dataclass(obj) or type(obj) is not dict:
            try:
                clone: Any = copy.copy(obj)
                for k, v in mapped.items():
                    clone[k] = v
                return clone
            except Exception:
                return mapped
        return mapped
    if _is_namedtuple(obj):
        return type(obj)(*(map_tensors(v, fn) for v in obj))
    if isinstance(obj, tuple):
        return tuple(map_tensors(v, fn) for v in obj)
    if isinstance(obj, list):
        return [map_tensors(v, fn) for v in obj]
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        clone = copy.copy(obj)
        for f in dataclasses.fields(obj):
            object.__setattr__(clone, f.name, map_tensors(getattr(obj, f.name), fn))
        return clone
    return obj


def structure(obj: Any) -> str:
    """A short description of the container layout, for "structure changed" messages."""
    if isinstance(obj, torch.Tensor):
        return "Tensor"
    if isinstance(obj, Mapping):
        return f"{type(obj).__name__}({', '.join(map(str, obj.keys()))})"
    if isinstance(obj, (tuple, list)):
        return f"{type(obj).__name__}[{', '.join(structure(v) for v in obj)}]"
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return f"{type(obj).__name__}({', '.join(f.name for f in dataclasses.fields(obj))})"
    return type(obj).__name__
