"""training.*: the model can learn — a loss, gradients everywhere, parameters that move."""

from __future__ import annotations

import fnmatch
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from ..unit.context import CheckContext
from ..unit.optim import Adam
from ..unit.seeding import derived_seed, seed_everything
from ..unit.training_run import validate_loss
from ..unit.training_types import TRAIN_STEPS, LossProblem, TrainingFailure
from .base import Outcome, Skip, check, failed, passed, warned
from .learning.findings import cause_phrase, curve, likely_causes
from .learning.learning_rate import adversarial
from .learning.probe import InitProbe, init_probe
from .learning.runs import make_optimizer
from .text import one_line


def matching(names: Sequence[str], patterns: Sequence[str]) -> list[str]:
    return [n for n in names if any(fnmatch.fnmatchcase(n, p) for p in patterns)]


def suggest_patterns(names: Sequence[str], all_names: Sequence[str]) -> str:
    """Globs a user can paste into frozen=/unused=: ``module.*`` where every parameter of
    a module is named, the parameter itself otherwise."""
    by_module: dict[str, list[str]] = {}
    for name in names:
        by_module.setdefault(name.rpartition(".")[0], []).append(name)
    patterns: list[str] = []
    for module, members in by_module.items():
        siblings = [n for n in all_names if n.rpartition(".")[0] == module]
        if module and len(members) == len(siblings):
            patterns.append(f"{module}.*")
        else:
            patterns.extend(members)
    return "[" + ", ".join(f'"{p}"' for p in patterns) + "]"


def listing(names: Sequence[str], limit: int = 5) -> str:
    shown = ", ".join(names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")


def _failure(failure: TrainingFailure, what: str) -> Outcome:
    details = failure.details or ""
    return failed(f"{what}: {one_line(failure.error)}", details, failure.where)


@check("training.loss")
def loss(ctx: CheckContext) -> Outcome:
    failure = ctx.trace_failure("loss")
    if failure is not None:
        if isinstance(failure.error, LossProblem):
            spec = ctx.spec
            culprit = (spec.step or spec.loss) if spec is not None else None
            where = ctx.locator.for_function(culprit) if culprit is not None else None
            return failed(str(failure.error), where=where or failure.where)
        return _failure(failure, "the training step raised")
    trace = ctx.training_trace()
    source = "surrogate loss" if ctx.uses_surrogate else "loss"
    return passed(f"{source} {trace.losses[0]:.4g} is a finite scalar that requires grad")


@check("training.gradients")
def gradients(ctx: CheckContext) -> Outcome:
    failure = ctx.trace_failure("backward")
    if failure is not None:
        if "inplace operation" in str(failure.error):
            culprit = failure.culprit or "an in-place op (x += ..., relu_(), x[...] = ...)"
            return failed(
                f"backward fails: {culprit}, but backward needs the original values; use the "
                f"out-of-place form (h = h + 1, torch.relu(h)) — {one_line(failure.error)}",
                failure.details, failure.where)
        return _failure(failure, "backward raised")
    trace = ctx.training_trace()
    spec = ctx.spec
    assert spec is not None
    exempt = set(matching(trace.trainable, spec.unused + spec.frozen))
    states = {n: s for n, s in trace.grad_states.items() if n not in exempt}
    nonfinite = [n for n, s in states.items() if "nonfinite" in s]
    if nonfinite:
        return failed(
            f"{listing(nonfinite)} received a NaN/Inf gradient: an op with an unbounded "
            "derivative (sqrt or log at 0, division by a tiny value, pow of a negative); clamp "
            "its input or add an epsilon",
            where=ctx.where_parameters(nonfinite),
        )
    never = [n for n, s in states.items() if "ok" not in s]
    if not never:
        return passed(f"{len(states)} trainable parameter(s) received gradients")
    missing = [n for n in never if all(s == "none" for s in states[n])]
    zero = [n for n in never if n not in missing]
    steps = trace.steps
    if missing:
        return failed(
            f"{listing(missing)} received no gradient: the branch is detached or unused "
            f"(.detach(), torch.no_grad(), .item()/.numpy(), or a layer that forward never "
            f"calls); if intended, declare unused={suggest_patterns(missing, trace.trainable)}",
            "\n".join(f"{n}: grad None in {steps} step(s)" for n in missing),
            ctx.where_parameters(missing),
        )
    return failed(
        f"{listing(zero)} received an all-zero gradient in {steps} step(s): the output does "
        "not depend on it (multiplied by 0, a dead ReLU, a mask that removes everything); if "
        f"intended, declare unused={suggest_patterns(zero, trace.trainable)}",
        "\n".join(f"{n}: {states[n]}" for n in zero),
        ctx.where_parameters(zero),
    )


@check("training.update")
def update(ctx: CheckContext) -> Outcome:
    ctx.trace_failure("backward")
    failure = ctx.trace_failure("optimizer")
    if failure is not None:
        return _failure(failure, "the optimizer raised")
    trace = ctx.training_trace()
    spec = ctx.spec
    assert spec is not None
    exempt = set(matching(trace.trainable, spec.unused + spec.frozen))
    stuck = [n for n in trace.trainable if n not in exempt and not trace.changed.get(n)]
    if not stuck:
        return passed(f"every trainable parameter changed within {trace.steps} step(s)")
    outside = [n for n in stuck if n not in trace.in_optimizer]
    if outside:
        where = ctx.locator.for_function(spec.optimizer) if spec.optimizer else None
        return failed(
            f"{listing(outside)} is not held by the optimizer, so it never changes: build the "
            "optimizer from model.parameters() (after every layer is created)",
            where=where or ctx.where_parameters(outside),
        )
    no_grad = [n for n in stuck if "ok" not in trace.grad_states.get(n, [])]
    reason = (
        "it receives no usable gradient (see training.gradients)" if no_grad else
        "the optimizer step leaves it unchanged (learning rate 0 for its group?)"
    )
    return failed(
        f"{listing(stuck)} did not change within {trace.steps} optimizer step(s): {reason}",
        where=ctx.where_parameters(stuck),
    )


@check("training.frozen")
def frozen(ctx: CheckContext) -> Outcome:
    ctx.trace_failure("optimizer")
    trace = ctx.training_trace()
    spec = ctx.spec
    assert spec is not None
    undeclared = [n for n in trace.frozen if n not in matching(trace.frozen, spec.frozen)]
    if undeclared:
        return failed(
            f"{listing(undeclared)} has requires_grad=False but is not declared frozen: a "
            "freeze that was never undone? if intended, declare "
            f"frozen={suggest_patterns(undeclared, trace.frozen + trace.trainable)}",
            where=ctx.where_parameters(undeclared),
        )
    declared = matching([*trace.frozen, *trace.trainable], spec.frozen)
    moved = [n for n in declared if trace.changed.get(n)]
    if moved:
        return failed(
            f"{listing(moved)} is declared frozen but changed during training: set "
            "requires_grad_(False) on it or leave it out of the optimizer",
            where=ctx.where_parameters(moved),
        )
    if not spec.frozen and not trace.frozen:
        return passed("no frozen parameters")
    return passed(f"{len(declared)} declared frozen parameter(s) stayed unchanged")


@check("training.overfit")
def overfit(ctx: CheckContext) -> Outcome:
    spec = ctx.spec
    assert spec is not None
    if not spec.has_real_loss:
        raise Skip(
            "no loss or step declared: fitting the surrogate proves nothing; declare loss= "
            "(and target=) or step= in the spec to run it"
        )
    n_params = sum(p.numel() for p in ctx.model.parameters() if p.requires_grad)
    if n_params > spec.overfit_max_params:
        raise Skip(
            f"{n_params:,} trainable parameters exceed the overfit budget of "
            f"{spec.overfit_max_params:,}; raise overfit_max_params in [tool.torchvet] to run it"
        )
    ctx.trace_failure("optimizer")
    probe = init_probe(ctx)
    if adversarial(ctx, probe):
        raise Skip(
            "the step sums opposing objectives (it switches requires_grad of "
            f"{listing(probe.toggled or ['its parameters'], 3)} inside the step, as a GAN "
            "does; or training=\"adversarial\" is declared): that sum need not fall on one "
            "batch, so overfitting it proves nothing"
        )
    fits = []
    for label, make in _attempts(ctx):
        fit = fit_one_batch(ctx, label, make)
        fits.append(fit)
        if fit.state in ("reached", "falling", "near"):
            return passed(fit.summary(), data={"curves": {f.label: curve(f.losses)
                                                          for f in fits}})
    return _plateau(ctx, probe, fits)


OVERFIT_MAX_STEPS = 400
PLATEAU_WINDOW = 50
PLATEAU_GAIN = 0.01  # of the way to the goal, per window, that counts as still falling
NEAR_GOAL = 0.25  # a plateau within this share of the way from the goal is near it


@dataclass
class Fit:
    """One attempt at memorising one fixed batch."""

    label: str
    losses: list[float]
    goal: float
    state: str  # reached | falling | near | plateau | diverged

    def summary(self) -> str:
        first, best = self.losses[0], min(self.losses)
        steps = len(self.losses) - 1
        if self.state == "reached":
            return f"loss {first:.4g} -> {best:.4g} in {steps} step(s) with {self.label}"
        if self.state == "near":
            return (f"loss {first:.4g} -> {best:.4g} with {self.label}: it levels off near "
                    f"half its start ({self.goal:.4g})")
        return (f"loss {first:.4g} -> {best:.4g} in {steps} steps with {self.label} and "
                f"still falling (goal {self.goal:.4g}): a slow learner, not a stuck one")


def _attempts(ctx: CheckContext) -> list[tuple[str, Any]]:
    """A bold Adam first (one batch should be memorised fast), the declared optimizer,
    then a careful Adam."""
    def adam(lr: float) -> Any:
        return lambda model: Adam([p for p in model.parameters() if p.requires_grad], lr=lr)

    found: list[tuple[str, Any]] = [("Adam lr 0.01", adam(1e-2))]
    spec = ctx.spec
    if spec is not None and spec.optimizer is not None:
        found.append(("your optimizer", lambda model: make_optimizer(ctx, model)[0]))
    found.append(("Adam lr 0.001", adam(1e-3)))
    return found


def fit_one_batch(ctx: CheckContext, label: str, make: Any) -> Fit:
    """Up to OVERFIT_MAX_STEPS steps on one batch: stops at the goal (half the first
    loss), at a non-finite loss, or on a plateau; a step count decides, never the clock."""
    seed_everything(derived_seed(ctx.seed, "overfit"))
    model = ctx.fresh_copy().train()
    optimizer = make(model)
    inputs = ctx.inputs(ctx.train_batch_size)
    target = ctx.target(ctx.train_batch_size)
    losses: list[float] = []
    goal = math.inf
    for step in range(OVERFIT_MAX_STEPS + 1):
        optimizer.zero_grad(set_to_none=True)
        value = ctx.training_loss(model, inputs, target)
        if step == 0:
            validate_loss(value, False)
        losses.append(float(value.detach()))
        if step == 0:
            goal = losses[0] - 0.5 * abs(losses[0])
        state = _fit_state(losses, goal, step)
        if state:
            return Fit(label, losses, goal, state)
        value.backward()
        optimizer.step()
    return Fit(label, losses, goal, "falling")


def _fit_state(losses: list[float], goal: float, step: int) -> str:
    latest = losses[-1]
    if not math.isfinite(latest):
        return "diverged"
    if latest <= goal:
        return "reached"
    if step < 2 * PLATEAU_WINDOW or (step % 10 and step < OVERFIT_MAX_STEPS):
        return ""
    gap = abs(losses[0] - goal)
    best_now = min(losses)
    best_before = min(losses[:-PLATEAU_WINDOW])
    if best_before - best_now >= PLATEAU_GAIN * gap:
        return "falling" if step >= OVERFIT_MAX_STEPS else ""
    return "near" if best_now <= goal + NEAR_GOAL * gap else "plateau"


def _plateau(ctx: CheckContext, probe: InitProbe, fits: list[Fit]) -> Outcome:
    """Every attempt levelled off far from the goal (or diverged)."""
    data = {"curves": {f.label: curve(f.losses) for f in fits}}
    curves = "\n".join(f"{f.label} ({f.state}): " + ", ".join(f"{v:.4g}" for v in f.losses[::10])
                       for f in fits)
    first = fits[0].losses[0]
    best = min(min(f.losses) for f in fits)
    if best < 0 or first < 0:
        raise Skip(f"the loss goes below 0 ({best:.4g}): it has no floor (a policy-gradient "
                   "or Wasserstein objective), so halving it on one batch means nothing")
    if probe.self_updated:
        raise Skip(
            f"the loss levels off at {best:.4g} while the step itself updates "
            f"{listing(probe.self_updated, 3)} (a queue, a centre or a teacher the model "
            "moves without gradients): its target moves with every step, so one batch cannot "
            "be memorised against it"
        )
    goal = fits[0].goal
    tried = ", ".join(f.label for f in fits)
    causes = likely_causes(ctx)
    what = (f"the loss levels off at {best:.4g} (from {first:.4g}) on one fixed batch, far "
            f"from {goal:.4g}, with {tried}")
    details = curves + "".join(f"\n{c.check}: {c.message}" for c in causes)
    if causes:
        return failed(f"{what}{cause_phrase(causes)}", details, causes[0].where, data)
    return warned(
        f"{what}; no learning diagnostic names a mechanism — check that the loss uses the "
        "model's output and the right target, that the parameters that matter are "
        "trainable, and what the output is read from",
        details, ctx.where_model(), data)


LOSS_AT_INIT_MARGIN = 0.5  # of ln(C), at least 1 nat


@check("training.loss_at_init")
def loss_at_init(ctx: CheckContext) -> Outcome:
    spec = ctx.spec
    if spec is None or not spec.has_real_loss:
        raise Skip("no loss or step declared: no cross-entropy to read")
    probe = init_probe(ctx)
    calls = [c for c in probe.losses if c.op == "cross_entropy"]
    if not calls:
        raise Skip("the loss calls no cross_entropy")
    call = calls[0]
    logits, got = call.input, call.value
    if logits.dim() < 2 or got is None:
        raise Skip("cross_entropy is not called on (batch, classes) logits with a mean")
    classes = int(logits.shape[1])
    if classes == logits.shape[0] and _in_batch_targets(call.target, classes):
        raise Skip(
            f"cross_entropy over ({classes}, {classes}) in-batch logits with targets "
            "arange(batch) (a contrastive loss): its classes are the batch mates and its "
            "scale a learned temperature, so ln(C) is no reference"
        )
    expected = math.log(classes)
    evidence = (f"train mode, batch {probe.batch} (what the first step sees): {got:.4g}; "
                f"{_eval_reading(ctx)}")
    if got <= expected + max(1.0, LOSS_AT_INIT_MARGIN * expected):
        return passed(f"cross-entropy at init {got:.3g} is near ln({classes}) = "
                      f"{expected:.3g}", evidence)
    return warned(
        f"cross-entropy at init is {got:.3g}, far above ln({classes}) = {expected:.3g}: the "
        "initial logits are too large or confidently wrong; scale down the last layer's init "
        "(e.g. zero-init or small std), and check the logits are not already scaled",
        evidence, ctx.where_model(),
    )


def _in_batch_targets(target: torch.Tensor | None, size: int) -> bool:
    if target is None or target.dim() != 1 or target.is_floating_point():
        return False
    return bool(torch.equal(target.cpu(), torch.arange(size)))


def _eval_reading(ctx: CheckContext) -> str:
    """The same loss on the eval-mode output (BatchNorm's running statistics): evidence
    only — at init they are not what the first training step sees."""
    spec = ctx.spec
    if spec is None or spec.step is not None or spec.loss is None:
        return "eval mode: not measured (a declared step)"
    try:  # evidence only: a loss that needs train-mode outputs has no eval reading
        with torch.no_grad():
            value = ctx.loss_of(ctx.eval_output(), ctx.target(ctx.batch_size))
        return f"eval mode, batch {ctx.batch_size}: {float(value):.4g}"
    except Exception as exc:
        return f"eval mode: not measured ({one_line(exc)})"


__all__ = ["TRAIN_STEPS", "gradients", "loss", "update"]
