"""``--shard i/n``: split the units over CI jobs, balanced by how long they took last time.

With recorded durations (the ``duration`` of each unit in ``torchvet run --json``
reports, several merged; the session reads the files and passes the units in) the units
are placed greedily, longest first, each onto the shard with the least total so far
(ties: fewer units, then the lower shard number); a unit the reports do not know counts
as the median of those they do. Without durations the units are dealt round-robin in
name order (:func:`torchvet.project.discovery.shard`). Both are deterministic: every job
of a matrix computes the same split, and every unit lands in exactly one shard.

The same reports record each unit's peak memory (``peak_memory``): :func:`recorded_peaks`
picks them out for the scheduler, which then knows a unit's size before its worker
starts.

This module never imports torch.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Mapping, Sequence

from ..results import UnitReport
from .discovery import Factory, shard

Key = tuple[str, str]  # (kind, name)


def recorded_durations(recorded: Iterable[UnitReport]) -> dict[Key, float]:
    """Seconds per (kind, name) of recorded units, in report order (later ones win)."""
    return {(u.kind, u.name): u.duration for u in recorded if u.duration >= 0}


def recorded_peaks(recorded: Iterable[UnitReport]) -> dict[Key, int]:
    """Own peak resident bytes per (kind, name) of recorded units (later ones win).
    Left out: units without a measured peak, and units that skipped a check for memory
    (their peak is not what all their checks need)."""
    found: dict[Key, int] = {}
    for unit in recorded:
        complete = not any(r.message.startswith("skipped for memory") for r in unit.results)
        if unit.peak_memory > 0 and complete:
            found[(unit.kind, unit.name)] = unit.peak_memory
        else:
            found.pop((unit.kind, unit.name), None)
    return found


def estimates(factories: Sequence[Factory], durations: Mapping[Key, float]
              ) -> dict[Key, float]:
    """Each unit's expected seconds: recorded, else the median of the recorded ones."""
    known = [durations[(f.kind, f.name)] for f in factories if (f.kind, f.name) in durations]
    default = statistics.median(known) if known else 1.0
    return {(f.kind, f.name): durations.get((f.kind, f.name), default) for f in factories}


def balanced_shards(factories: Sequence[Factory], total: int,
                    durations: Mapping[Key, float]) -> list[list[Factory]]:
    """All ``total`` shards: longest first onto the least-loaded shard."""
    if total < 1:
        raise ValueError(f"shard count {total}: expected >= 1")
    cost = estimates(factories, durations)
    ordered = sorted(factories, key=lambda f: (-cost[(f.kind, f.name)], f.kind, f.name))
    shards: list[list[Factory]] = [[] for _ in range(total)]
    loads = [0.0] * total
    for f in ordered:
        target = min(range(total), key=lambda i: (loads[i], len(shards[i]), i))
        shards[target].append(f)
        loads[target] += cost[(f.kind, f.name)]
    return [sorted(s, key=lambda f: (f.kind != "model", f.name)) for s in shards]


def select_shard(factories: Sequence[Factory], index: int, total: int,
                 durations: Mapping[Key, float] | None = None) -> list[Factory]:
    """The ``index``-th (1-based) of ``total`` shards: balanced when ``durations`` holds
    any, else round-robin by name."""
    if total < 1 or not 1 <= index <= total:
        raise ValueError(f"shard {index}/{total}: expected 1 <= i <= n")
    if not durations:
        return shard(factories, index, total)
    return balanced_shards(factories, total, durations)[index - 1]
