"""The short training run that training.loss / gradients / update / frozen all read.

Up to three optimizer steps on one fixed batch, in train mode, on a copy of the model
(or the model itself, lent and restored: the memory plan decides). It stops early once
every trainable parameter has had a usable gradient and moved, so a healthy model
usually costs one step; zero-initialised layers get the steps they legitimately need,
and an optimizer that accumulates gradients over several calls gets the calls it needs.
Each parameter change is attributed to the optimizer or to the model's own code, so an
EMA target is not mistaken for a training bug. The run is memoised once per unit
(:func:`training_trace`); a failure belongs to the check of the stage it happened at
(:func:`trace_failure`).
"""

from __future__ import annotations

import fnmatch
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from ...unit import optrace
from ...unit.context import CheckContext
from ...unit.copies import SavedValues
from ...unit.losses import validate_loss
from ...unit.memory_plan import TRAINING_RUN
from ...unit.recipe import UserStep
from ...unit.seeding import derived_seed, seed_everything
from ...unit.user_optimizer import build_optimizer
from ...verdict import DependencyFailed, Location

TRAIN_STEPS = 3
# An optimizer that moved nothing in TRAIN_STEPS steps may accumulate gradients over
# several calls (Lightning's accumulate_grad_batches, DeepSpeed): it gets up to this many.
ACCUMULATION_STEPS = 8
# the stages of one step in order, and the check that reports a failure at each
STAGE_OWNERS = {"loss": "training.loss", "backward": "training.gradients",
                "optimizer": "training.update"}


@dataclass
class TrainingFailure:
    stage: str  # "loss" | "backward" | "optimizer"
    error: BaseException
    where: Location = None
    details: str = ""
    culprit: str = ""  # e.g. "add_() modifies the output of sigmoid() in place"


@dataclass
class TrainingTrace:
    """What a few optimizer steps on one fixed batch did to every parameter, and who
    did it: ``optimizer_moved`` changed inside ``optimizer.step()``, ``self_moved``
    inside the loss/step and its backward (the model's own non-gradient updates: EMA
    targets, ``AveragedModel.update_parameters``, data-dependent init)."""

    trainable: list[str] = field(default_factory=list)
    frozen: list[str] = field(default_factory=list)
    grad_states: dict[str, list[str]] = field(default_factory=dict)
    optimizer_moved: set[str] = field(default_factory=set)
    self_moved: set[str] = field(default_factory=set)
    in_optimizer: set[str] = field(default_factory=set)
    losses: list[float] = field(default_factory=list)
    steps: int = 0
    failure: TrainingFailure | None = None

    @property
    def changed(self) -> dict[str, bool]:
        """Whether each parameter changed at all during the run."""
        moved = self.optimizer_moved | self.self_moved
        return {n: n in moved for n in [*self.trainable, *self.frozen]}

    def usable_gradient(self, name: str) -> bool:
        return "ok" in self.grad_states.get(name, [])

    def moved_by_model_only(self, name: str) -> bool:
        """Changed by the model's own code, never by the optimizer, with no usable
        gradient: an EMA / averaged copy, not a parameter that trains."""
        return (name in self.self_moved and name not in self.optimizer_moved
                and not self.usable_gradient(name))


def grad_state(grad: torch.Tensor | None) -> str:
    if grad is None:
        return "none"
    if grad.is_sparse:
        grad = grad.coalesce().values()
    if not bool(torch.isfinite(grad).all()):
        return "nonfinite"
    if not bool(grad.count_nonzero()):
        return "zero"
    return "ok"


def run_training(ctx: CheckContext, steps: int) -> TrainingTrace:
    """Train a fresh copy for up to ``steps`` optimizer steps (more while an
    accumulating optimizer has moved nothing yet), attributing every parameter change
    to the loss/step and its backward (the model's own code) or to ``optimizer.step()``.
    Changes are found by exact comparison: an EMA whose target equals its source moves
    it by float rounding only."""
    trace = TrainingTrace()
    model = ctx.memory.training_model(ctx).train()  # memory hook: a copy, or lent in place
    seed_everything(derived_seed(ctx.seed, "train"))
    named = list(model.named_parameters())
    trace.trainable = [n for n, p in named if p.requires_grad]
    trace.frozen = [n for n, p in named if not p.requires_grad]
    last = ctx.memory.save_values(ctx, model)  # memory hook: in memory or on disk
    trace.grad_states = {n: [] for n in trace.trainable}
    inputs = ctx.inputs(ctx.train_batch_size)
    target = ctx.target(ctx.train_batch_size)
    spec = ctx.spec
    assert spec is not None
    try:
        optimizer = (
            build_optimizer(spec.optimizer, model, ctx.model)
            if spec.optimizer is not None
            else ctx.memory.default_optimizer(ctx, model.parameters())  # memory hook
        )
    except Exception as exc:
        trace.failure = TrainingFailure("optimizer", exc, ctx.where_exception(exc))
        return trace
    held = {id(p) for group in optimizer.param_groups for p in group["params"]}
    trace.in_optimizer = {n for n, p in named if id(p) in held}
    params = dict(named)
    declared = [*spec.frozen, *spec.ema]
    try:
        user = UserStep(spec.recipe, model, optimizer, spec.optimizer is not None)
    except Exception as exc:  # the declared scheduler
        trace.failure = TrainingFailure("optimizer", exc, ctx.where_exception(exc))
        return trace
    while trace.steps < ACCUMULATION_STEPS:
        optimizer.zero_grad(set_to_none=True)
        trace.failure = _backpropagate(ctx, user, model, inputs, target, trace)
        if trace.failure is not None:
            break
        trace.self_moved |= _moved(params, last)
        for name in trace.trainable:
            trace.grad_states[name].append(grad_state(params[name].grad))
        try:
            user.clip()
            user.step()
        except Exception as exc:
            trace.failure = TrainingFailure("optimizer", exc, ctx.where_exception(exc))
            break
        trace.optimizer_moved |= _moved(params, last)
        trace.steps += 1
        if (_settled(trace, declared)
                or (trace.steps >= steps and not _accumulating(trace))):
            break
    return trace


def _backpropagate(ctx: CheckContext, user: UserStep, model: nn.Module, inputs: Any,
                   target: Any, trace: TrainingTrace) -> TrainingFailure | None:
    """The step's forward and backward passes (one per micro-batch); records their mean
    loss, returns the stage that failed."""
    values: list[float] = []
    try:
        for _ in range(user.passes):
            try:
                with user.autocast():
                    loss = ctx.training_loss(model, inputs, target)
                validate_loss(loss, ctx.uses_surrogate)
            except Exception as exc:
                return TrainingFailure("loss", exc, ctx.where_exception(exc))
            values.append(float(loss.detach()))
            try:
                user.backward(loss)
            except Exception as exc:
                where, culprit, details = _anomaly_location(ctx, inputs, target)
                return TrainingFailure("backward", exc, where or ctx.where_exception(exc),
                                       details, culprit)
        return None
    finally:
        if values:
            trace.losses.append(sum(values) / len(values))


def training_trace(ctx: CheckContext) -> TrainingTrace:
    """The unit's training run (memoised: run once, read by every training check)."""
    return ctx.memo(TRAINING_RUN, lambda: run_training(ctx, TRAIN_STEPS))


def trace_failure(ctx: CheckContext, stage: str) -> TrainingFailure | None:
    """The training run's failure if it is ``stage``'s to report.

    A failure at an earlier stage, or one that stopped the run before its first loss,
    makes this check a skip naming the owner; one at a later stage leaves this stage's
    evidence valid (None).
    """
    failure = training_trace(ctx).failure
    if failure is None:
        return None
    if failure.stage == stage:
        return failure
    stages = list(STAGE_OWNERS)
    stopped_first = not training_trace(ctx).losses  # the optimizer is built before the step
    if stages.index(failure.stage) < stages.index(stage) or stopped_first:
        raise DependencyFailed(
            f"not run: the training step fails at its {failure.stage} "
            f"(see {STAGE_OWNERS[failure.stage]})"
        )
    return None


def _moved(params: Mapping[str, torch.Tensor], last: SavedValues) -> set[str]:
    """Parameters that differ (bitwise; NaN equals NaN) from ``last``, which is updated
    (read and written one tensor at a time: it may live on disk)."""
    moved = set()
    with torch.no_grad():
        for name, param in params.items():
            before = last[name]
            now = param.detach()
            if torch.equal(now, before):
                continue
            if now.is_floating_point() and bool(((now == before)
                                                 | (now.isnan() & before.isnan())).all()):
                continue
            moved.add(name)
            last.update(name, now)
    return moved


def _settled(trace: TrainingTrace, declared: Sequence[str]) -> bool:
    """Every trainable parameter has had a usable gradient and the optimizer moved it,
    or it is moved by the model's own code without a gradient (an averaged copy); and
    every frozen parameter not ``declared`` frozen/ema has moved (an EMA target moves
    by rounding only, or not at all, while it equals its source: it gets the steps to
    show it follows; a forgotten freeze costs those steps before it fails)."""
    trained = all(
        (trace.usable_gradient(n) and n in trace.optimizer_moved)
        or trace.moved_by_model_only(n)
        for n in trace.trainable
    )
    moved = trace.self_moved | trace.optimizer_moved
    return trained and all(
        n in moved or any(fnmatch.fnmatchcase(n, p) for p in declared) for n in trace.frozen
    )


def _accumulating(trace: TrainingTrace) -> bool:
    """The optimizer has moved nothing although it holds parameters with gradients:
    it may step only every k calls."""
    return not trace.optimizer_moved and any(
        trace.usable_gradient(n) and n in trace.in_optimizer for n in trace.trainable
    )


def _anomaly_location(ctx: CheckContext, inputs: Any, target: Any) -> tuple[Any, str, str]:
    """Re-run the failing step to find its line: first an in-place op on a tensor that
    backward needs, else (anomaly mode) the forward op whose backward failed."""
    found = optrace.trace(
        lambda: ctx.training_loss(ctx.fresh_copy().train(), inputs, target),
        optrace.inplace_on_saved_output(),
        ctx.locator,
    )
    if found is not None:
        return found[1], found[0], ""
    model = ctx.fresh_copy().train()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            with torch.autograd.detect_anomaly(check_nan=False):
                loss = ctx.training_loss(model, inputs, target)
                loss.backward()
        except Exception:
            pass
    marker = "Traceback of forward call"
    text = "\n".join(str(w.message) for w in caught if marker in str(w.message))
    return (ctx.locator.in_text(text) if text else None), "", text
