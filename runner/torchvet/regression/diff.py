"""How two snapshots of a unit differ: signature (outputs, state_dict, forward, inputs),
values (per output leaf, within a dtype-aware tolerance) and cost (parameters, FLOPs,
activation memory beyond a share).

Pure data in, findings out: the ``regression.*`` checks phrase verdicts from them in the
worker, and the parent builds the job summary's "Model changes" rows from them, so a
verdict and its row never disagree. A rename is found as such: keys that disappear and
keys that appear with the same shapes, differing only by a module path.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

SAMPLE_SIZE = 8
# Relative tolerance of an output value per dtype. Cross-machine on purpose: the same
# torch on another CPU (another SIMD width, another BLAS blocking) moves float32 results
# in the last bits, compounded through depth; a changed activation, init or wiring moves
# them by percents. Absolute slack is the same share of the leaf's RMS, so elements near
# zero are judged at the leaf's scale.
RTOL = {"float16": 1e-2, "bfloat16": 3e-2, "float32": 1e-4, "float64": 1e-7,
        "complex64": 1e-4, "complex128": 1e-7}
STATS = ("mean", "std", "min", "max")
DEFAULT_COST_SHARE = 0.05


def sample_indices(numel: int, count: int = SAMPLE_SIZE) -> list[int]:
    """The flat indices a leaf's digest samples: evenly spread, first and last included."""
    if numel <= 0:
        return []
    if numel <= count:
        return list(range(numel))
    return [round(i * (numel - 1) / (count - 1)) for i in range(count)]


def parse_shape(text: str) -> list[str]:
    return [] if text in ("()", "") else text.split("x")


def position(shape: str, flat: int) -> str:
    """``[1, 4]``: the element at a flat index of a tensor of ``shape`` (concrete)."""
    dims = [int(d) for d in parse_shape(shape)]
    index = []
    for size in reversed(dims):
        index.append(flat % size if size else 0)
        flat //= max(size, 1)
    return "[" + ", ".join(str(i) for i in reversed(index)) + "]"


# --------------------------------------------------------------------------- signature


@dataclass(frozen=True)
class Rename:
    old: str  # module path ("" for the root)
    new: str
    keys: tuple[tuple[str, str], ...]  # (old key, new key)

    def describe(self) -> str:
        return f"{self.old or '<root>'}.* → {self.new or '<root>'}.* ({len(self.keys)} keys)"


@dataclass
class SignatureDiff:
    """Every signature change, grouped; empty lists mean unchanged."""

    outputs: list[str] = field(default_factory=list)
    renamed: list[Rename] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    added: list[str] = field(default_factory=list)
    reshaped: list[tuple[str, str, str]] = field(default_factory=list)  # key, old, new
    retyped: list[tuple[str, str, str]] = field(default_factory=list)
    forward: list[str] = field(default_factory=list)
    inputs: list[str] = field(default_factory=list)
    dataset: list[str] = field(default_factory=list)

    @property
    def checkpoint_compatible(self) -> bool:
        """Old checkpoints load with ``strict=True`` (a dtype change is cast on load)."""
        return not (self.renamed or self.removed or self.added or self.reshaped)

    @property
    def changed(self) -> bool:
        return bool(self.outputs or self.forward or self.inputs or self.dataset
                    or self.retyped or not self.checkpoint_compatible)

    def state_dict_lines(self) -> list[str]:
        lines = [f"renamed {r.describe()}: " + ", ".join(f"{a} → {b}" for a, b in r.keys[:4])
                 + (", …" if len(r.keys) > 4 else "") for r in self.renamed]
        lines += [f"removed {k}" for k in self.removed]
        lines += [f"added {k}" for k in self.added]
        lines += [f"{k}: shape {a} → {b}" for k, a, b in self.reshaped]
        lines += [f"{k}: {a} → {b}" for k, a, b in self.retyped]
        return lines

    def lines(self) -> list[str]:
        return [*self.outputs, *self.dataset, *self.forward, *self.inputs,
                *(f"state_dict: {line}" for line in self.state_dict_lines())]

    def new_keys(self) -> list[str]:
        """Keys of the new model to point at (renamed, added, reshaped)."""
        keys = [b for r in self.renamed for _, b in r.keys] + self.added
        return keys + [k for k, _, _ in self.reshaped] + [k for k, _, _ in self.retyped]


def flat_state(signature: Mapping[str, Any]) -> dict[str, str]:
    """``{"layer1.0.conv1.weight": "64x64x3x3 float32"}`` from the per-module layout."""
    default = str(signature.get("dtype") or "float32")
    flat = {}
    for module, tensors in (signature.get("state_dict") or {}).items():
        for name, desc in tensors.items():
            text = str(desc)
            full = text if " " in text else f"{text} {default}"
            shape, _, dtype = full.partition(" ")
            flat[f"{module}.{name}" if module else name] = f"{shape} {dtype}"
    return flat


def _split_desc(desc: str) -> tuple[str, str]:
    shape, _, dtype = desc.partition(" ")
    return shape, dtype


def diff_signature(old: Mapping[str, Any], new: Mapping[str, Any]) -> SignatureDiff:
    diff = SignatureDiff()
    diff.outputs = _diff_leaves(old.get("outputs") or {}, new.get("outputs") or {}, "output")
    diff.forward = _diff_forward(old.get("forward"), new.get("forward"))
    if (old.get("inputs") or {}) != (new.get("inputs") or {}):
        diff.inputs = [f"declared inputs {_leaves_text(old.get('inputs'))} → "
                       f"{_leaves_text(new.get('inputs'))}"]
    if old.get("length") != new.get("length"):
        diff.dataset = [f"length {old.get('length')} → {new.get('length')}"]
    before, after = flat_state(old), flat_state(new)
    removed = {k: v for k, v in before.items() if k not in after}
    added = {k: v for k, v in after.items() if k not in before}
    diff.renamed = find_renames(removed, added)
    diff.removed, diff.added = sorted(removed), sorted(added)
    for key in before.keys() & after.keys():
        (s0, t0), (s1, t1) = _split_desc(before[key]), _split_desc(after[key])
        if s0 != s1:
            diff.reshaped.append((key, s0, s1))
        elif t0 != t1:
            diff.retyped.append((key, t0, t1))
    def weights_first(change: tuple[str, str, str]) -> tuple[Any, ...]:
        module, _, name = change[0].rpartition(".")
        return natural_order(module), name != "weight", name

    diff.reshaped.sort(key=weights_first)
    diff.retyped.sort(key=weights_first)
    return diff


def natural_order(text: str) -> list[tuple[int, int, str]]:
    """``layer2`` before ``layer10``."""
    return [(0, int(part), "") if part.isdigit() else (1, 0, part)
            for part in re.split(r"(\d+)", text) if part]


def _leaves_text(leaves: Any) -> str:
    if not leaves:
        return "(none)"
    return ", ".join(f"{k}: {v}" for k, v in leaves.items())


def _diff_leaves(old: Mapping[str, str], new: Mapping[str, str], what: str) -> list[str]:
    lines = [f"{what} {k} removed (was {old[k]})" for k in old if k not in new]
    lines += [f"{what} {k} added ({new[k]})" for k in new if k not in old]
    for key in old.keys() & new.keys():
        (s0, t0), (s1, t1) = _split_desc(old[key]), _split_desc(new[key])
        if s0 != s1:
            lines.append(f"{what} {key} shape {s0} → {s1}")
        if t0 != t1:
            lines.append(f"{what} {key} dtype {t0} → {t1}")
    return sorted(lines, key=lambda line: (" removed" not in line, line))


def _diff_forward(old: Sequence[str] | None, new: Sequence[str] | None) -> list[str]:
    """Only changes that break a caller: a parameter removed or moved, a new one that must
    be passed. An optional parameter added is backward compatible."""
    if old is None or new is None or list(old) == list(new):
        return []
    def names(params: Sequence[str]) -> list[str]:
        return [p.split("=", 1)[0] for p in params]
    old_names, new_names = names(old), names(new)
    accepts_any = any(n.startswith("**") for n in new_names)
    lines = [f"forward parameter {n} removed" for n in old_names
             if n not in new_names and not (accepts_any and not n.startswith("*"))]
    lines += [f"forward parameter {p} added without a default" for p in new
              if p.split("=", 1)[0] not in old_names and "=" not in p
              and not p.startswith("*")]
    positional_old = [n for n in old_names if not n.startswith("*")]
    positional_new = [n for n in new_names if n in positional_old]
    if not lines and positional_new != [n for n in positional_old if n in positional_new]:
        lines.append(f"forward parameters reordered ({', '.join(old)}) → ({', '.join(new)})")
    if lines:
        lines[0] += f": forward({', '.join(old)}) → forward({', '.join(new)})"
    return lines


def _module_and_suffix(key: str, keep: int) -> tuple[str, str]:
    parts = key.split(".")
    return ".".join(parts[: len(parts) - keep]), ".".join(parts[len(parts) - keep:])


def _rename_pair(old: str, new: str) -> tuple[str, str]:
    """The differing module paths of two keys with a common dotted suffix."""
    a, b = old.split("."), new.split(".")
    keep = 0
    while keep < min(len(a), len(b)) and a[-1 - keep] == b[-1 - keep]:
        keep += 1
    return _module_and_suffix(old, keep)[0], _module_and_suffix(new, keep)[0]


def _under(key: str, prefix: str) -> bool:
    return not prefix or key == prefix or key.startswith(prefix + ".")


def _moved(key: str, old: str, new: str) -> str:
    rest = key[len(old):].lstrip(".") if old else key
    return f"{new}.{rest}" if new and rest else (new or rest)


def find_renames(removed: dict[str, str], added: dict[str, str]) -> list[Rename]:
    """Module renames hidden in ``removed``/``added`` (key -> "shape dtype"), taken out of
    both: every key under the old path reappears under the new one, same shape and dtype.
    The most widely supported candidates win (``blocks`` → ``layers`` over ``blocks.0`` →
    ``layers.1``)."""
    by_name: dict[tuple[str, str], list[str]] = {}
    for key, desc in added.items():
        by_name.setdefault((key.rsplit(".", 1)[-1], desc), []).append(key)
    votes: Counter[tuple[str, str]] = Counter()
    for key, desc in removed.items():
        for candidate in by_name.get((key.rsplit(".", 1)[-1], desc), ()):
            pair = _rename_pair(key, candidate)
            if pair[0] != pair[1]:
                votes[pair] += 1
    renames = []
    for (old, new), _ in sorted(votes.items(), key=lambda kv: (-kv[1], kv[0])):
        keys = [k for k in removed if _under(k, old)]
        mapping = [(k, _moved(k, old, new)) for k in sorted(keys)]
        if keys and all(added.get(b) == removed[a] for a, b in mapping):
            renames.append(Rename(old, new, tuple(mapping)))
            for a, b in mapping:
                del removed[a], added[b]
    return renames


# --------------------------------------------------------------------------- values


@dataclass(frozen=True)
class Moved:
    """An output leaf whose values left the tolerance."""

    leaf: str
    delta: float  # the largest |difference|
    where: str  # "out[1, 4]" or "its mean"
    before: float
    after: float
    allowed: float  # the tolerance at that element

    def describe(self) -> str:
        """``out["logits"] moved by up to 0.13 at out["logits"][0, 1] (0.11 → -0.02,
        tolerance 4.2e-05)``."""
        return (f"{self.leaf} moved by up to {_num(self.delta)} at {self.where} "
                f"({_num(self.before)} → {_num(self.after)}, tolerance {_num(self.allowed)})")


def _num(value: float) -> str:
    return f"{value:.4g}" if abs(value) >= 1e-3 or value == 0 else f"{value:.2g}"


def _float(value: Any) -> float:
    return float(value)  # "nan", "inf" and "-inf" are written as strings


def leaf_tolerance(dtype: str, digest: Mapping[str, Any],
                   declared: Mapping[str, float] | None = None) -> tuple[float, float]:
    """(atol, rtol) for one leaf: a declared tolerance, else the dtype's share of the
    leaf's RMS and of each value; integers and booleans compare exactly."""
    if declared:
        return float(declared.get("atol", 0.0)), float(declared.get("rtol", 0.0))
    rtol = RTOL.get(dtype, 0.0)
    mean, std = _float(digest.get("mean", 0.0)), _float(digest.get("std", 0.0))
    scale = math.hypot(mean, std) if math.isfinite(mean) and math.isfinite(std) else 0.0
    return rtol * scale, rtol


def _differ(a: float, b: float, atol: float, rtol: float) -> float:
    """How far beyond the tolerance ``b`` is from ``a`` (<= 0: within)."""
    if math.isnan(a) or math.isnan(b):
        return 0.0 if math.isnan(a) and math.isnan(b) else math.inf
    if math.isinf(a) or math.isinf(b):
        return 0.0 if a == b else math.inf
    return abs(a - b) - (atol + rtol * abs(a))


def diff_leaf(leaf: str, dtype: str, old: Mapping[str, Any], new: Mapping[str, Any],
              declared: Mapping[str, float] | None = None) -> Moved | None:
    """The worst value of ``leaf`` outside the tolerance, or None."""
    atol, rtol = leaf_tolerance(dtype, old, declared)
    worst: tuple[float, Moved] | None = None
    candidates: list[tuple[str, float, float]] = [
        (f"its {name}", _float(old[name]), _float(new[name]))
        for name in STATS if name in old and name in new]
    indices = sample_indices(_numel(str(old.get("shape", ""))), len(old.get("sample", ())))
    for flat, a, b in zip(indices, old.get("sample", ()), new.get("sample", ()), strict=False):
        candidates.append((f"{leaf}{position(str(old['shape']), flat)}", _float(a), _float(b)))
    for where, a, b in candidates:
        excess = _differ(a, b, atol, rtol)
        if excess > 0 and (worst is None or excess > worst[0]):
            delta = abs(a - b) if math.isfinite(a - b) else math.inf
            worst = (excess, Moved(leaf, delta, where, a, b, atol + rtol * abs(a)))
    return worst[1] if worst else None


def _numel(shape: str) -> int:
    return math.prod(int(d) for d in parse_shape(shape)) if shape else 0


def diff_values(old: Mapping[str, Any], new: Mapping[str, Any], dtypes: Mapping[str, str],
                declared: Mapping[str, float] | None = None) -> list[Moved]:
    """Leaves present in both digests (same concrete shape) whose values moved, worst
    first relative to their tolerance."""
    moved = []
    for leaf in old:
        if leaf not in new or old[leaf].get("shape") != new[leaf].get("shape"):
            continue
        found = diff_leaf(leaf, dtypes.get(leaf, ""), old[leaf], new[leaf], declared)
        if found is not None:
            moved.append(found)
    return sorted(moved, key=lambda m: -(m.delta / m.allowed if m.allowed else math.inf))


def first_moved_module(old: Mapping[str, Any], new: Mapping[str, Any], dtype: str,
                       declared: Mapping[str, float] | None = None) -> str | None:
    """The first top-level module, in call order, whose output moved: the modules called
    before it still compute what they did."""
    for name, digest in sorted(new.items(), key=lambda kv: kv[1].get("call", 0)):
        before = old.get(name)
        if before is None or before.get("shape") != digest.get("shape"):
            return name  # a new module, or one whose output changed shape
        if diff_leaf(name, dtype, before, digest, declared) is not None:
            return name
    return None


def leaf_dtypes(signature_leaves: Mapping[str, str]) -> dict[str, str]:
    return {k: _split_desc(v)[1] for k, v in signature_leaves.items()}


# --------------------------------------------------------------------------- cost


@dataclass(frozen=True)
class CostChange:
    what: str  # "parameters", "forward FLOPs", ...
    before: float
    after: float

    @property
    def share(self) -> float:
        if self.before == 0:
            return 0.0 if self.after == 0 else math.inf
        return (self.after - self.before) / self.before

    def describe(self) -> str:
        share = "new" if math.isinf(self.share) else f"{self.share:+.1%}"
        return f"{self.what} {human(self.before)} → {human(self.after)} ({share})"


def human(value: float) -> str:
    """1234567 -> '1.23 M': counts and bytes at a glance."""
    for factor, suffix in ((1e12, " T"), (1e9, " G"), (1e6, " M"), (1e3, " k")):
        if abs(value) >= factor:
            return f"{value / factor:.3g}{suffix}"
    return f"{value:g}"


COST_FIELDS = (("forward FLOPs", ("flops", "forward")), ("backward FLOPs", ("flops", "backward")),
               ("activation memory (bytes)", ("activation_bytes",)))


def _dig(mapping: Mapping[str, Any] | None, path: Sequence[str]) -> Any:
    value: Any = mapping
    for part in path:
        if not isinstance(value, Mapping):
            return None
        value = value.get(part)
    return value


def cost_changes(old: Mapping[str, Any], new: Mapping[str, Any], key: str,
                 compare_measured: bool = True) -> list[CostChange]:
    """Every cost figure both snapshots have: parameters always, FLOPs and activation
    memory when both were measured under ``key`` (same torch minor, same device)."""
    found = []
    all_trainable = all(_dig(s, ("params", "total")) == _dig(s, ("params", "trainable"))
                        for s in (old, new))
    for what, name in (("parameters", "total"), ("trainable parameters", "trainable")):
        a, b = _dig(old, ("params", name)), _dig(new, ("params", name))
        if a is not None and b is not None and not (name == "trainable" and all_trainable):
            found.append(CostChange(what, float(a), float(b)))
    if compare_measured:
        for what, path in COST_FIELDS:
            a = _dig(old, ("measured", key, *path))
            b = _dig(new, ("measured", key, *path))
            if a is not None and b is not None:
                found.append(CostChange(what, float(a), float(b)))
    return found


def module_changes(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[tuple[str, int, int]]:
    """Top-level modules whose parameter count changed, largest change first."""
    a = _dig(old, ("params", "by_module")) or {}
    b = _dig(new, ("params", "by_module")) or {}
    changed = [(m, int(a.get(m, 0)), int(b.get(m, 0))) for m in {*a, *b}
               if a.get(m, 0) != b.get(m, 0)]
    return sorted(changed, key=lambda c: (-abs(c[2] - c[1]), c[0]))


# --------------------------------------------------------------------------- summary rows


def change_row(old: Mapping[str, Any], new: Mapping[str, Any], key: str) -> dict[str, Any]:
    """The "Model changes" row of a unit: before → after figures and whether old
    checkpoints still load (outputs are the regression.outputs verdict's to say)."""
    signature = diff_signature(old.get("signature") or {}, new.get("signature") or {})
    row: dict[str, Any] = {
        "checkpoint_compatible": signature.checkpoint_compatible,
        "signature_changed": signature.changed,
    }
    for name, path in (("params", ("params", "total")),
                       ("flops", ("measured", key, "flops", "forward")),
                       ("activation_bytes", ("measured", key, "activation_bytes"))):
        a, b = _dig(old, path), _dig(new, path)
        if a is not None or b is not None:
            row[name] = [a, b]
    return row
