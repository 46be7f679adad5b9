"""The layout of a sample: its containers and leaves, and how two samples differ.

data.samples, data.collate, data.reproducible and data.workers all compare samples or
batches first by layout (paths such as ``["input_ids"]`` or ``[0]``, then kinds, dtypes
and shapes) and then by value. This is that shared model, with what ``default_collate``
cannot batch and the fix for each kind of difference, so every check words them alike.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import torch

from ...unit.text import dtype_name, shape_str

np: Any
try:
    import numpy as np
except ImportError:  # pragma: no cover - numpy is installed wherever torch is used with data
    np = None


@dataclass(frozen=True)
class Leaf:
    """One value in a sample, with its path (``["input_ids"]``, ``[0]``) and layout."""

    path: str
    kind: str  # tensor, ndarray, int, float, bool, complex, str, bytes, None, list, object
    dtype: str = ""
    shape: tuple[int, ...] = ()
    value: Any = field(default=None, compare=False, repr=False)

    def describe(self) -> str:
        if self.kind in ("tensor", "ndarray"):
            name = "Tensor" if self.kind == "tensor" else "ndarray"
            return f"{name}{shape_str(self.shape)} {self.dtype}"
        if self.kind == "list":
            return f"list of {self.shape[0]} {self.dtype}"
        if self.kind == "object":
            return self.dtype
        return self.kind


@dataclass
class Layout:
    """A sample's containers (path -> description) and leaves, in a stable order."""

    containers: dict[str, str]
    leaves: list[Leaf]

    def leaf(self, path: str) -> Leaf | None:
        return next((leaf for leaf in self.leaves if leaf.path == path), None)

    def describe(self) -> str:
        if len(self.leaves) == 1 and not self.containers:
            return self.leaves[0].describe()
        return ", ".join(f"{leaf.path or 'sample'}: {leaf.describe()}" for leaf in self.leaves)


def _key_path(key: Any) -> str:
    return f'["{key}"]' if isinstance(key, str) else f"[{key!r}]"


def _number_kind(value: Any) -> str | None:
    if isinstance(value, bool) or (np is not None and isinstance(value, np.bool_)):
        return "bool"
    if isinstance(value, int) or (np is not None and isinstance(value, np.integer)):
        return "int"
    if isinstance(value, float) or (np is not None and isinstance(value, np.floating)):
        return "float"
    if isinstance(value, complex) or (np is not None and isinstance(value, np.complexfloating)):
        return "complex"
    return None


def layout(sample: Any) -> Layout:
    """The containers and leaves of ``sample`` (lists of numbers are one leaf)."""
    containers: dict[str, str] = {}
    found: list[Leaf] = []

    def visit(obj: Any, path: str, depth: int) -> None:
        if isinstance(obj, torch.Tensor):
            found.append(Leaf(path, "tensor", dtype_name(obj.dtype), tuple(obj.shape), obj))
            return
        if np is not None and isinstance(obj, np.ndarray):
            found.append(Leaf(path, "ndarray", str(obj.dtype), tuple(obj.shape), obj))
            return
        kind = _number_kind(obj)
        if kind is not None:
            found.append(Leaf(path, kind, kind, (), obj))
            return
        if obj is None or isinstance(obj, (str, bytes)):
            found.append(Leaf(path, type(obj).__name__, type(obj).__name__, (), obj))
            return
        if depth > 8:
            found.append(Leaf(path, "object", qualname(type(obj)), (), obj))
            return
        if isinstance(obj, Mapping):
            keys = sorted(obj, key=str)
            containers[path] = f"{type(obj).__name__}({', '.join(map(str, keys))})"
            for key in keys:
                visit(obj[key], path + _key_path(key), depth + 1)
            return
        if isinstance(obj, list) and obj and all(_number_kind(v) for v in obj):
            kinds = {_number_kind(v) for v in obj}
            elem = "float" if "float" in kinds else kinds.pop() or "int"
            found.append(Leaf(path, "list", str(elem), (len(obj),), obj))
            return
        if isinstance(obj, (list, tuple)):
            containers[path] = f"{type(obj).__name__} of {len(obj)}"
            for i, child in enumerate(obj):
                visit(child, f"{path}[{i}]", depth + 1)
            return
        if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
            names = [f.name for f in dataclasses.fields(obj)]
            containers[path] = f"{type(obj).__name__}({', '.join(names)})"
            for name in names:
                visit(getattr(obj, name), f"{path}.{name}", depth + 1)
            return
        found.append(Leaf(path, "object", qualname(type(obj)), (), obj))

    visit(sample, "", 0)
    return Layout(containers, found)


def qualname(cls: type) -> str:
    if cls.__module__ in ("builtins", "__main__"):
        return cls.__qualname__
    return f"{cls.__module__}.{cls.__qualname__}"


# --------------------------------------------------------------------------- comparing two samples


@dataclass
class Difference:
    """How one sample departs from the reference sample."""

    path: str
    what: str  # structure, kind, dtype, shape
    mine: str
    reference: str

    def text(self, name: str, ref_name: str) -> str:
        if self.what == "shape":
            return (f"{name}{self.path} has shape {self.mine} but {ref_name}{self.path} has "
                    f"{self.reference}")
        return f"{name}{self.path} is {self.mine} but {ref_name}{self.path} is {self.reference}"


def differences(reference: Layout, other: Layout) -> list[Difference]:
    """Structure, kind, dtype and shape differences, outermost first."""
    found: list[Difference] = []
    for path in sorted(set(reference.containers) | set(other.containers), key=len):
        mine, ref = other.containers.get(path), reference.containers.get(path)
        if mine != ref and not any(path.startswith(d.path) for d in found):
            found.append(Difference(path, "structure", mine or _leaf_desc(other, path),
                                    ref or _leaf_desc(reference, path)))
    broken = [d.path for d in found]
    for ref_leaf in reference.leaves:
        if any(ref_leaf.path.startswith(p) for p in broken):
            continue
        leaf = other.leaf(ref_leaf.path)
        if leaf is None:
            continue
        if leaf.kind != ref_leaf.kind:
            found.append(Difference(leaf.path, "kind", leaf.describe(), ref_leaf.describe()))
        elif leaf.dtype != ref_leaf.dtype:
            what = "dtype" if leaf.kind in ("tensor", "ndarray") else "kind"
            found.append(Difference(leaf.path, what, leaf.describe(), ref_leaf.describe()))
        elif leaf.shape != ref_leaf.shape:
            found.append(Difference(leaf.path, "shape", shape_str(leaf.shape),
                                    shape_str(ref_leaf.shape)))
    return found


def _leaf_desc(lay: Layout, path: str) -> str:
    leaf = lay.leaf(path)
    return leaf.describe() if leaf else "absent"


def to_tensor(value: Any) -> torch.Tensor | None:
    if isinstance(value, torch.Tensor):
        return value
    try:
        if np is not None and isinstance(value, (np.ndarray, np.generic)):
            return torch.as_tensor(np.asarray(value))
        if _number_kind(value) is not None or (
            isinstance(value, list) and all(_number_kind(v) for v in value)
        ):
            return torch.as_tensor(value)
    except (TypeError, ValueError, RuntimeError):
        return None
    return None


# ------------------------------------------------------------------- what default_collate needs


def uncollatable(lay: Layout) -> Leaf | None:
    return next((leaf for leaf in lay.leaves if leaf.kind in ("object", "NoneType")), None)


def uncollatable_fix(leaf: Leaf) -> str:
    if leaf.kind == "NoneType":
        return ("return a tensor instead (an empty or all-zero one for a missing value), drop "
                "the key, or pass a collate_fn that handles missing values")
    if "Image" in leaf.dtype:
        return ("convert it to a tensor in __getitem__ (torchvision.transforms.ToTensor() "
                "or PILToTensor()), or pass a collate_fn")
    return ("return tensors, numpy arrays, numbers or strings from __getitem__, or pass a "
            "collate_fn that batches this type")


def difference_fix(diff: Difference, default: bool) -> str:
    if diff.what == "dtype":
        return ("samples of one field must share a dtype (stacking them promotes the batch); "
                "convert in __getitem__ (e.g. .float() or .long())")
    if diff.what == "shape":
        return ("default_collate cannot stack samples of different shapes; pad or crop them to "
                "one size in __getitem__, or pass a collate_fn that pads (e.g. "
                "torch.nn.utils.rnn.pad_sequence(..., batch_first=True)) as 'collate_fn' in "
                "the factory's dict or to the DataLoader")
    return ("every sample must have the same fields and types for default_collate; return one "
            "structure from __getitem__, or pass a collate_fn that handles the variation")


# --------------------------------------------------------------------------- values


def same_values(a: Any, b: Any) -> bool:
    if isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor):
        if a.shape != b.shape or a.dtype != b.dtype:
            return False
        if a.is_floating_point() or a.is_complex():
            return bool(torch.equal(a, b) or torch.allclose(a, b, rtol=0, atol=0, equal_nan=True))
        return bool(torch.equal(a, b))
    if np is not None and isinstance(a, np.ndarray) and isinstance(b, np.ndarray):
        return bool(a.shape == b.shape and np.array_equal(a, b, equal_nan=a.dtype.kind in "fc"))
    try:
        return bool(a == b) or (a != a and b != b)
    except Exception:
        return a is b


def first_mismatch(a: Any, b: Any) -> tuple[str, Any, Any] | None:
    """(path, a's leaf, b's leaf) of the first leaf that differs, else None."""
    la, lb = layout(a), layout(b)
    diffs = differences(la, lb)
    if diffs:
        d = diffs[0]
        return d.path, d.reference, d.mine
    for leaf in la.leaves:
        other = lb.leaf(leaf.path)
        if other is None or not same_values(leaf.value, other.value):
            return leaf.path, leaf.value, other.value if other is not None else None
    return None


def differing_row(a: Any, b: Any, rows: int) -> int | None:
    if (isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor) and a.shape == b.shape
            and a.dim() >= 1 and a.shape[0] == rows):
        for r in range(rows):
            if not same_values(a[r], b[r]):
                return r
    return None


def brief(value: Any) -> str:
    if isinstance(value, torch.Tensor):
        flat = value.flatten()[:6].tolist()
        return f"Tensor{shape_str(tuple(value.shape))} {dtype_name(value.dtype)} {flat}..."
    text = repr(value)
    return text if len(text) < 200 else text[:200] + "..."


def leaf_value(lay: Layout, path: str) -> Any:
    leaf = lay.leaf(path)
    return leaf.value if leaf is not None else None
