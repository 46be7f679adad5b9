"""How much memory the units may use, and which unit may use it now.

The parent never imports torch, so it cannot know a unit's size before the unit runs. It
learns it two ways: the peaks recorded by earlier ``torchvet run --json`` reports (read
with ``--durations``, like the durations), and the :class:`~torchvet.engine.protocol.
Footprint` a worker sends once it has built its model and measured one forward. The
worker then waits for a :class:`~torchvet.engine.protocol.Grant`: the bytes it may use
beyond what it already holds. :class:`Admission` hands them out so that the running
units' peaks fit the memory actually available (the cgroup limit inside a container,
else the machine's available memory), with headroom; ``-j`` stays an upper bound. A unit
whose checks cannot all fit waits until it runs alone, then gets what is left, and the
worker skips the checks that need more (never an OOM kill).

Nothing here imports torch.
"""

from __future__ import annotations

import os
from collections.abc import Hashable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import UsageError

MiB = 1 << 20
GiB = 1 << 30
# What a unit is assumed to hold while it builds, when no report recorded its peak: the
# interpreter state a forked worker adds to what it shares with the fork server.
STARTUP_RESERVE = 256 * MiB
# Kept free for the parent and whatever the estimates miss.
HEADROOM_FRACTION = 0.10
HEADROOM_MIN = 256 * MiB
# The fork server's `import torch` (and the meta machinery it may preload): memory is
# read before it finishes, and workers share its pages rather than count them.
FORK_SERVER = 512 * MiB
# A recorded peak, measured, replaces the estimate, with this margin for noise.
HISTORY_MARGIN = 1.15
UNLIMITED = 1 << 60  # cgroup v1 writes 9223372036854771712 for "no limit"
OVERRIDE_ENV = "TORCHVET_MEMORY"


# --------------------------------------------------------------------------- reading


@dataclass(frozen=True)
class MemoryReading:
    """The memory a run may use: ``available`` now, out of ``limit``, and where it was
    read (a cgroup's files, /proc/meminfo, or the override)."""

    available: int
    limit: int
    source: str


def parse_size(text: str) -> int:
    """``"6g"``, ``"6 GiB"``, ``"512M"``, ``"1.5GB"`` or plain bytes -> bytes (binary
    units: Docker's ``--memory 6g`` is 6 GiB)."""
    value = text.strip().lower().removesuffix("b").removesuffix("i")
    scale = {"k": 1 << 10, "m": MiB, "g": GiB, "t": 1 << 40}.get(value[-1:], 1)
    number = value[:-1] if scale != 1 else value
    try:
        size = int(float(number.strip()) * scale)
    except ValueError:
        raise UsageError(f"{OVERRIDE_ENV}={text!r}: expected a size such as 6G or 512M") from None
    if size <= 0:
        raise UsageError(f"{OVERRIDE_ENV}={text!r}: expected a positive size")
    return size


def _read_int(path: Path) -> int | None:
    try:
        text = path.read_text().strip()
    except OSError:
        return None
    if text == "max":
        return UNLIMITED
    try:
        return int(text)
    except ValueError:
        return None


def _stat(path: Path, *keys: str) -> int:
    """The first of ``keys`` found in a cgroup ``memory.stat`` (0 when none is)."""
    try:
        lines = path.read_text().splitlines()
    except OSError:
        return 0
    values = dict(line.split(" ", 1) for line in lines if " " in line)
    for key in keys:
        if key in values:
            return int(values[key])
    return 0


def _cgroup_paths(root: Path) -> dict[str, str]:
    """controller ("" for cgroup v2) -> this process's cgroup path."""
    try:
        lines = (root / "proc/self/cgroup").read_text().splitlines()
    except OSError:
        return {}
    found: dict[str, str] = {}
    for line in lines:
        parts = line.split(":", 2)
        if len(parts) == 3:
            for controller in parts[1].split(","):
                found[controller] = parts[2]
    return found


def _levels(mount: Path, path: str) -> list[Path]:
    """The process's cgroup directory and its ancestors up to the mount (inside a
    container's cgroup namespace the process's path may not exist: the mount is it)."""
    here = mount / path.lstrip("/")
    if not here.is_dir():
        return [mount]
    levels = [here]
    while here != mount and mount in here.parents:
        here = here.parent
        levels.append(here)
    return levels


def _cgroup_available(root: Path) -> tuple[int, int, str] | None:
    """(available, limit, source) from the tightest cgroup level that has a limit."""
    paths = _cgroup_paths(root)
    best: tuple[int, int, str] | None = None
    candidates: list[tuple[Path, str, str, tuple[str, ...], str]] = []
    if "" in paths and (root / "sys/fs/cgroup/cgroup.controllers").exists():
        mount = root / "sys/fs/cgroup"
        for level in _levels(mount, paths[""]):
            candidates.append((level, "memory.max", "memory.current",
                               ("inactive_file",), "cgroup v2"))
    if "memory" in paths:
        mount = root / "sys/fs/cgroup/memory"
        for level in _levels(mount, paths["memory"]):
            candidates.append((level, "memory.limit_in_bytes", "memory.usage_in_bytes",
                               ("total_inactive_file", "inactive_file"), "cgroup v1"))
    for level, limit_name, usage_name, reclaimable, kind in candidates:
        limit = _read_int(level / limit_name)
        usage = _read_int(level / usage_name)
        if limit is None or usage is None or limit >= UNLIMITED:
            continue
        used = max(0, usage - _stat(level / "memory.stat", *reclaimable))
        available = max(0, limit - used)
        if best is None or available < best[0]:
            best = (available, limit, f"{kind} {level / limit_name}")
    return best


def _meminfo(root: Path) -> tuple[int, int] | None:
    """(MemAvailable, MemTotal) in bytes."""
    try:
        lines = (root / "proc/meminfo").read_text().splitlines()
    except OSError:
        return None
    values = {}
    for line in lines:
        key, _, rest = line.partition(":")
        parts = rest.split()
        if parts and parts[0].isdigit():
            values[key] = int(parts[0]) * 1024
    if "MemAvailable" not in values or "MemTotal" not in values:
        return None
    return values["MemAvailable"], values["MemTotal"]


def read_memory(root: Path = Path("/"), environ: Mapping[str, str] | None = None
                ) -> MemoryReading | None:
    """The memory available now: ``$TORCHVET_MEMORY`` when set, else the tighter of the
    cgroup (v2, then v1) limit minus its non-reclaimable usage and /proc/meminfo's
    MemAvailable; None where neither can be read (not Linux): no limit is enforced."""
    env = os.environ if environ is None else environ
    override = env.get(OVERRIDE_ENV, "").strip()
    if override:
        size = parse_size(override)
        return MemoryReading(size, size, f"${OVERRIDE_ENV}")
    cgroup = _cgroup_available(root)
    meminfo = _meminfo(root)
    if cgroup is None and meminfo is None:
        return None
    if meminfo is None or (cgroup is not None and cgroup[0] <= meminfo[0]):
        assert cgroup is not None
        return MemoryReading(*cgroup)
    if cgroup is not None:
        return MemoryReading(meminfo[0], min(cgroup[1], meminfo[1]), "/proc/meminfo")
    return MemoryReading(meminfo[0], meminfo[1], "/proc/meminfo")


def usable(reading: MemoryReading) -> int:
    """What the units may share: the available memory less the fork server's share and
    the headroom."""
    headroom = max(HEADROOM_MIN, int(reading.available * HEADROOM_FRACTION))
    return max(0, reading.available - FORK_SERVER - headroom)


def describe(size: float) -> str:
    """Bytes as people read them: ``1.9 GB`` (GiB, as Docker's ``--memory`` counts)."""
    if size >= GiB:
        return f"{size / GiB:.1f} GB"
    return f"{max(size, 0) / MiB:.0f} MB"


# --------------------------------------------------------------------------- admission

BUILDING, WAITING, GRANTED = "building", "waiting", "granted"


@dataclass
class _Unit:
    key: Hashable
    reserved: int  # what the accounting holds for it now
    known: bool  # an earlier report recorded its peak
    history: int = 0
    state: str = BUILDING
    baseline: int = 0
    need: int = 0
    order: int = 0  # when it started waiting


@dataclass(frozen=True)
class GrantDecision:
    """Bytes a unit may use beyond its baseline, with what the message of a skip quotes."""

    key: Hashable
    grant: int
    capacity: int
    others: int  # held by the other running units when granted
    alone: bool  # granted because nothing else ran, not because everything fitted


@dataclass
class Admission:
    """Hands out memory to units: who may start, and what a built unit may use.

    ``capacity`` is the usable memory (None: unlimited, everything is granted);
    ``history`` the own peak bytes earlier reports recorded per unit key.
    """

    capacity: int | None = None
    history: Mapping[Hashable, int] = field(default_factory=dict)
    startup: int = STARTUP_RESERVE
    units: dict[Hashable, _Unit] = field(default_factory=dict)
    _arrivals: int = 0

    def reserved(self, but: Hashable | None = None) -> int:
        return sum(u.reserved for k, u in self.units.items() if k != but)

    def may_start(self, key: Hashable) -> bool:
        """Whether a unit may start now (the caller also bounds the count by ``-j``):
        always when nothing runs; else not while a unit waits for memory, nor while a
        unit of unknown size builds beside an unknown one, nor beyond the capacity."""
        if self.capacity is None or not self.units:
            return True
        if any(u.state == WAITING for u in self.units.values()):
            return False
        known = key in self.history
        if not known and any(u.state == BUILDING and not u.known for u in self.units.values()):
            return False
        return self.reserved() + self.history.get(key, self.startup) <= self.capacity

    def start(self, key: Hashable) -> None:
        history = self.history.get(key)
        self.units[key] = _Unit(key, history if history is not None else self.startup,
                                history is not None, history or 0)

    def footprint(self, key: Hashable, baseline: int, need: int) -> list[GrantDecision]:
        """A unit built its model: it holds ``baseline`` and its checks need ``need``
        more. Returns the grants now possible (this unit's, or none: it waits)."""
        unit = self.units[key]
        unit.baseline = baseline
        # a peak measured by an earlier run beats the estimate (both ways)
        unit.need = max(0, int(unit.history * HISTORY_MARGIN) - baseline) if unit.known else need
        unit.state = WAITING
        unit.reserved = baseline
        self._arrivals += 1
        unit.order = self._arrivals
        return self._sweep()

    def finish(self, key: Hashable) -> list[GrantDecision]:
        """A unit ended: its memory is free again; returns the grants now possible."""
        self.units.pop(key, None)
        return self._sweep()

    def _sweep(self) -> list[GrantDecision]:
        decisions = []
        for unit in sorted((u for u in self.units.values() if u.state == WAITING),
                           key=lambda u: u.order):
            decision = self._try(unit)
            if decision is not None:
                decisions.append(decision)
        return decisions

    def _try(self, unit: _Unit) -> GrantDecision | None:
        if self.capacity is None:
            return self._grant(unit, unit.need, 0, False)
        others = self.reserved(but=unit.key)
        free = max(0, self.capacity - others - unit.baseline)
        if unit.need <= free:
            return self._grant(unit, unit.need, others, False)
        busy = any(u.state in (BUILDING, GRANTED) for k, u in self.units.items()
                   if k != unit.key)
        if busy:
            return None
        return self._grant(unit, free, others, True)

    def _grant(self, unit: _Unit, grant: int, others: int, alone: bool) -> GrantDecision:
        unit.state = GRANTED
        unit.reserved = unit.baseline + grant
        return GrantDecision(unit.key, grant, self.capacity or 0, others, alone)
