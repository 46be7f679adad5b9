"""A unit's memory once the parent has granted it: which checks fit, how the training
run is laid out, what a check skipped for memory says, and the clean-up between checks.

The grant is what the unit may use beyond the memory it held when it was built; memory
it has accumulated since (memoised outputs) counts against it. A check whose estimated
need does not fit is skipped, naming the memory it needs, what is free, and how to get
more. The short training run picks the cheapest layout that fits, in order: a copy with
its starting values kept in memory (small models only), a copy with them on disk, the
model itself trained in place and restored from disk; models above
:data:`~torchvet.unit.footprint.STATELESS_PARAMS` trainable parameters take the
stateless step instead of Adam.
"""

from __future__ import annotations

import gc
from collections.abc import Iterable, Sequence
from typing import Any, Protocol

import torch
from torch import nn

from ..engine.memory import describe, read_memory
from ..engine.protocol import Grant
from ..verdict import matches
from . import rss
from .copies import SavedValues, named_state, sharing_copy, spill_directory
from .footprint import (
    SPILL_BYTES,
    STATELESS_PARAMS,
    Sizes,
    TrainingWay,
    Unit,
    check_need,
    model_sizes,
    training_need,
)
from .optim import Adam, StatelessAdam

MiB = 1 << 20
LIVE_CHECK_ABOVE = 64 * MiB  # needs this small are not worth reading /proc for
LIVE_MARGIN = 128 * MiB
# Memo keys of the shared computations whose memory the plan manages; the checks side
# memoises them under these keys (torchvet.checks.shared).
TRAINING_RUN = "training"
LEARNING_PROBE = "learning-probe"
ONE_BATCH_RUN = "one-batch-run"  # (ONE_BATCH_RUN, optimizer, scale)
OUTPUTS_BY_SIZE = "outputs-by-size"


class PlannedUnit(Unit, Protocol):
    """What the plan reads and frees of a built unit (the check context is one)."""

    def computed(self, key: Any) -> bool: ...

    def memo_keys(self) -> list[Any]: ...

    def drop(self, key: Any) -> None: ...

    def restore_model(self) -> None: ...

    def fresh_copy(self) -> nn.Module: ...


def readers(key: Any, ctx: PlannedUnit) -> tuple[str, ...] | None:
    """Patterns of the checks that read a memoised value that can be large (None: not
    one of those, or one every check may read). A large unit drops it once none is left
    to run; another reader would compute it again, seeded alike."""
    by_size = ("forward.batch_sizes", "forward.batch_independence")
    if key == OUTPUTS_BY_SIZE:
        return by_size
    if key == LEARNING_PROBE:
        return ("training.overfit", "training.loss_at_init", "learning")
    if not isinstance(key, tuple) or not key:
        return None
    if key[0] == "eval" and key != ("eval", ctx.batch_size, 0):
        return by_size
    if key[0] == ONE_BATCH_RUN:
        return ("training.overfit", "learning.learning_rate", "learning.progress")
    return None


class MemoryPlan:
    """The memory decisions of one unit; without a grant (tests, ``check_inline``) only
    the memory the machine has free limits it."""

    def __init__(self, sizes: Sizes | None = None, grant: Grant | None = None,
                 baseline: int = 0, meter: rss.Meter | None = None,
                 table: str = "models.<name>") -> None:
        self.sizes = sizes
        self.grant = grant
        self.baseline = baseline
        self.meter = meter
        self.table = table  # [tool.torchvet.<table>]: "models.gpt2"
        self.way: TrainingWay | None = None
        self.used_way: TrainingWay | None = None  # how the training run actually ran
        self._spill_dir: str | None = None
        self._lent: tuple[nn.Module, bool] | None = None
        self._saved: list[SavedValues] = []
        self._restore_from: SavedValues | None = None

    # -- sizes and needs ----------------------------------------------------------
    def sizes_of(self, ctx: PlannedUnit) -> Sizes:
        if self.sizes is None:
            self.sizes = model_sizes(ctx) if ctx.spec is not None else Sizes()
        return self.sizes

    def ways(self, ctx: PlannedUnit) -> list[TrainingWay]:
        """Layouts of the training run, preferred first. A small model trains a copy; a
        large one (weights of SPILL_BYTES or more) trains in place, its starting values
        on disk, so the run adds only the gradients and activations."""
        s = self.sizes_of(ctx)
        stateless = s.trainable_params > STATELESS_PARAMS
        disk = self.spill_dir(ctx) is not None
        lent = [TrainingWay(True, disk, stateless), TrainingWay(True, False, stateless)]
        found = lent
        if s.weights < SPILL_BYTES:
            copies = [TrainingWay(False, False, stateless), TrainingWay(False, disk, stateless)]
            found = copies + lent
        if not stateless:
            found += [TrainingWay(w.lend, w.spill, True) for w in found]
        return list(dict.fromkeys(found))

    def spill_dir(self, ctx: PlannedUnit) -> str | None:
        if self._spill_dir is None:
            self._spill_dir = spill_directory(2 * self.sizes_of(ctx).weights) or ""
        return self._spill_dir or None

    def training_way(self, ctx: PlannedUnit) -> TrainingWay:
        """The layout the training run takes: the first that fits (the cheapest when none
        does; its checks are then skipped)."""
        if self.way is None:
            ways = self.ways(ctx)
            free = self.free()
            s = self.sizes_of(ctx)
            fitting = [w for w in ways if free is None or training_need(s, ctx, w) <= free]
            self.way = fitting[0] if fitting else ways[-1]
        return self.way

    def need(self, check_id: str, ctx: PlannedUnit) -> int:
        s = self.sizes_of(ctx)
        training = 0 if ctx.computed(TRAINING_RUN) else training_need(
            s, ctx, self.training_way(ctx))
        return check_need(check_id, s, ctx, training)

    def free(self) -> int | None:
        """Bytes the unit may still add (None: no grant limits it)."""
        if self.grant is None:
            return None
        held = (self.meter.now() - self.baseline) if self.meter is not None else 0
        return max(0, self.grant.bytes - max(0, held))

    # -- skipping -------------------------------------------------------------------
    def skip_reason(self, check_id: str, ctx: PlannedUnit) -> str:
        """Why ``check_id`` cannot run in the memory there is ('' when it fits)."""
        need = self.need(check_id, ctx)
        free = self.free()
        if free is not None and need > free:
            return self._message(check_id, need, free, self._granted())
        if need > LIVE_CHECK_ABOVE:
            live = read_memory()
            if live is not None and need > live.available - LIVE_MARGIN:
                where = (f"{describe(live.available)} is available now, read from "
                         f"{live.source}")
                return self._message(check_id, need, max(0, live.available - LIVE_MARGIN),
                                     where)
        return ""

    def _granted(self) -> str:
        assert self.grant is not None
        text = f"{describe(self.grant.capacity)} usable in this run"
        if self.grant.others:
            text += f", {describe(self.grant.others)} of it held by the units beside it"
        return text

    def _message(self, check_id: str, need: int, free: int, where: str) -> str:
        held = self.sizes.weights if self.sizes else 0
        crowded = self.grant is not None and self.grant.others > 0
        fixes = ["--jobs 1"] if crowded else []
        fixes += ["a runner with more memory",
                  "TORCHVET_MEMORY=<size> if the limit read is wrong"]
        return (
            f"skipped for memory: {check_id} needs about {describe(need)} beyond the model's "
            f"{describe(held)} of weights, but {describe(free)} is free for it ({where}); "
            f"to run it: {', or '.join(fixes)}; to skip it on purpose: [tool.torchvet."
            f"{self.table}] skip = {{ \"{check_id}\" = \"needs more memory\" }}"
        )

    def details(self, ctx: PlannedUnit) -> str:
        """The estimate behind a memory skip."""
        s = self.sizes_of(ctx)
        lines = [
            f"weights (parameters + buffers): {describe(s.weights)}",
            f"trainable parameters: {s.trainable_params:,} ({describe(s.trainable)}; their "
            "gradients take as much)",
            f"one eval forward at batch {ctx.batch_size}: {describe(s.eval_activations)}; "
            f"kept for backward: {describe(s.saved_activations)}",
        ]
        if ctx.spec is not None:
            lines.append(f"training run: {self.training_way(ctx).describe()}")
        return "\n".join(lines)

    # -- the training run's hooks (checks.shared.training_run) -------------------
    def training_model(self, ctx: PlannedUnit) -> nn.Module:
        """The model the short training run trains: a copy, or the model itself, lent
        in place and restored by :meth:`after_check`."""
        way = self.training_way(ctx)
        self.used_way = way
        if way.lend:
            ctx.restore_model()
            self._lent = (ctx.model, ctx.model.training)
            self._restore_from = self._keep(ctx, ctx.model, way)
            return ctx.model
        return ctx.fresh_copy()

    def save_values(self, ctx: PlannedUnit, model: nn.Module) -> SavedValues:
        """The model's values now, for the training run to compare against and update
        as it goes ("did this step change it?"); a lent model's starting values are
        kept apart, to restore it."""
        return self._keep(ctx, model, self.used_way or self.training_way(ctx))

    def _keep(self, ctx: PlannedUnit, model: nn.Module, way: TrainingWay) -> SavedValues:
        saved = SavedValues(named_state(model), self.spill_dir(ctx) if way.spill else None)
        self._saved.append(saved)
        return saved

    def default_optimizer(self, ctx: PlannedUnit, params: Iterable[torch.Tensor]) -> Adam:
        way = self.used_way or self.training_way(ctx)
        return StatelessAdam(params, lr=1e-3) if way.stateless else Adam(params, lr=1e-3)

    def note(self, check_id: str, ctx: PlannedUnit) -> str:
        """What a training verdict should say about the run's layout ('' if nothing)."""
        way = self.used_way
        if way is None or check_id != "training.update" or not way.stateless:
            return ""
        spec = ctx.spec
        if spec is not None and spec.optimizer is not None:
            return ""
        s = self.sizes_of(ctx)
        return (f"(a stateless step, Adam's first step at every step, replaced Adam for "
                f"this model's {s.trainable_params:,} trainable parameters: Adam's state "
                f"would take {describe(2 * s.trainable)})")

    # -- between checks ---------------------------------------------------------------
    def eval_copy(self, ctx: PlannedUnit) -> nn.Module:
        """A copy to run eval forwards on without touching the pristine model's modules
        (lazily built caches land in the copy): a large model's copy shares its
        parameters rather than duplicating them."""
        if self.sizes_of(ctx).weights < SPILL_BYTES:
            return ctx.fresh_copy()
        return sharing_copy(ctx.model, ctx.fresh_copy)

    def drop_unread(self, ctx: PlannedUnit, remaining: Sequence[str]) -> None:
        """Forget large memoised values no remaining check reads."""
        for key in ctx.memo_keys():
            found = readers(key, ctx)
            if found is not None and not any(matches(check, pattern) for check in remaining
                                             for pattern in found):
                ctx.drop(key)

    def after_check(self, ctx: PlannedUnit, remaining: Sequence[str] = ()) -> None:
        """Give back what a check borrowed: restore a lent model, delete saved values, drop
        memoised values no later check reads (large units), hand freed memory back to
        the OS."""
        if self._lent is not None:
            model, mode = self._lent
            for p in model.parameters():
                p.grad = None  # first: the gradients take as much memory as the weights
            if self._restore_from is not None:
                self._restore_from.restore(named_state(model))
            model.train(mode)
            self._lent = None
            self._restore_from = None
        for saved in self._saved:
            saved.close()
        self._saved = []
        if self.sizes is not None and self.sizes.weights >= SPILL_BYTES:
            if ctx.spec is not None:
                self.drop_unread(ctx, remaining)
            gc.collect()
        rss.release_freed()
