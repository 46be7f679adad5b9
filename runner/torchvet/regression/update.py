"""What ``torchvet snapshot`` does with a unit's file, given the snapshot just taken.

- no file: create it;
- the same model (signature, parameters, seed) measured under a torch/device key the
  file lacks: add that key, touching nothing else;
- within tolerance of the file: leave it alone (last-bit noise never churns the file);
- different: report what differs and leave the file alone, unless ``--update``, which
  writes the new snapshot but keeps the file's values where they still hold (so an
  accepted cost change does not rewrite every number) and drops the values of other
  torch/device keys (they describe the old model).

Pure data in, a decision out; the caller writes the file. No torch here.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .diff import cost_changes, diff_signature, diff_values, leaf_dtypes

CREATED, ADDED, UNCHANGED, DIFFERS, UPDATED = "created", "added", "unchanged", "differs", "updated"


@dataclass
class Decision:
    action: str  # created | added | unchanged | differs | updated
    snapshot: dict[str, Any] | None  # what to write (None: leave the file)
    differences: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def differences(old: Mapping[str, Any], new: Mapping[str, Any], key: str
                ) -> tuple[list[str], bool]:
    """What differs between two snapshots of a unit, and whether the measured values of
    ``key`` moved (when ``old`` has them)."""
    lines: list[str] = []
    if old.get("seed") != new.get("seed"):
        lines.append(f"seed {old.get('seed')} → {new.get('seed')}")
    signature = diff_signature(old.get("signature") or {}, new.get("signature") or {})
    lines += signature.lines()
    lines += [c.describe() for c in cost_changes(old, new, key) if c.before != c.after]
    if (old.get("params") or {}).get("by_module") != (new.get("params") or {}).get("by_module"):
        lines.append("parameters per module changed")
    values_moved = False
    before = (old.get("measured") or {}).get(key)
    after = (new.get("measured") or {}).get(key) or {}
    if before is not None:
        dtypes = leaf_dtypes((new.get("signature") or {}).get("outputs") or {})
        for part in ("inputs", "outputs"):
            moved = diff_values(before.get(part) or {}, after.get(part) or {}, dtypes)
            values_moved = values_moved or bool(moved)
            lines += [m.describe() for m in moved]
    return lines, values_moved


def decide(old: Mapping[str, Any] | None, new: Mapping[str, Any], update: bool) -> Decision:
    key = next(iter(new.get("measured") or {}), "")
    if old is None:
        return Decision(CREATED, dict(new))
    lines, values_moved = differences(old, new, key)
    measured = dict(old.get("measured") or {})
    if not lines:
        if key in measured:
            return Decision(UNCHANGED, None)
        merged = copy.deepcopy(dict(old))
        merged["measured"] = {**measured, key: new["measured"][key]}
        return Decision(ADDED, merged, notes=[f"added the values for {key}"])
    if not update:
        return Decision(DIFFERS, None, lines)
    merged = copy.deepcopy(dict(new))
    fresh = dict(merged["measured"][key])
    if key in measured and not values_moved:
        for part in ("inputs", "outputs", "modules"):  # within tolerance: keep the numbers
            if part in measured[key]:
                fresh[part] = measured[key][part]
    merged["measured"] = {key: fresh}
    others = sorted(k for k in measured if k != key)
    notes = [f"dropped the values for {', '.join(others)} (they describe the old model): run "
             "`torchvet snapshot` under each to add them back"] if others else []
    return Decision(UPDATED, merged, lines, notes)
