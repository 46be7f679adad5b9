"""learning.learning_rate: the declared optimizer's rate, momentum and weight decay suit
the model.

Up to twenty steps of the declared optimizer on one fixed batch (:func:`runs.rate_run`,
ended once the loss is at half its start; nothing to judge without a declared optimizer):
- divergence (the loss turns NaN/Inf, spikes a thousand-fold, or blows up many-fold and
  stays up) that a tenth or a hundredth of the rate cures: the rate is the cause (failed).
  Divergence at every rate is not the rate's doing and is left to gradient_flow /
  input_scale;
- a parameter group at learning rate 0 holding parameters not declared frozen (failed);
- a loss that spikes many-fold before it settles while the first step moves a layer by more
  than its own norm, and a tenth of the rate does not spike (warned: the run survives one
  batch, but the weights were thrown far from their init);
- a rate that barely moves the weights (first step under 3e-5 of their norm) while the
  loss stands still (warned);
- weight decay that outweighs the gradient and shrinks the weights to half their norm
  within the run (warned).
"""

from __future__ import annotations

import fnmatch
import math
import statistics
from collections.abc import Sequence

from ...results import Status
from ...unit.context import CheckContext
from ...verdict import Outcome, Skip, passed
from ..causes.findings import FINDERS, Finding, curve, finder
from ..registry import check
from ..shared.probe import InitProbe, adversarial, init_probe
from ..shared.runs import RateRun, rate_run

BLOW_UP = 4.0  # max loss against the first one
EXPLODES = 1e3  # a spike this many-fold is a divergence even where the loss comes back down
STAYS_UP = 1.5  # median of the last ten losses against the first one
LOWER_RATES = (0.1, 0.01)
CRAWL = 3e-5  # largest first-step move of a layer, relative to its weights
STILL = 0.01  # relative change of the loss over the run that counts as standing still
DECAY_DOMINATES = 3.0  # weight_decay * ||w|| against the loss's ||grad||
COLLAPSE = 0.5  # the group's weight norm after the run, against the start
HIGH_MOMENTUM = 0.99
SETTLE = 3  # first losses whose median a cure's last losses must not exceed
OVERSHOOT = 1.0  # first-step move of a layer against its norm that throws it off its init


def diverged(losses: Sequence[float], adversarial: bool = False) -> bool:
    if not all(math.isfinite(v) for v in losses):
        return True
    first = losses[0] if losses else 0.0
    if adversarial or first <= 0 or len(losses) < 2:
        return False
    return max(losses) >= EXPLODES * first or (
        max(losses) >= BLOW_UP * first and statistics.median(losses[-10:]) >= STAYS_UP * first)


def _settles(losses: Sequence[float]) -> bool:
    """The loss ends no higher than it starts: a rate that cures a divergence."""
    return statistics.median(losses[-10:]) <= statistics.median(losses[:SETTLE])


def lenient(ctx: CheckContext, probe: InitProbe) -> bool:
    """A loss that may rise without diverging: a min-max sum, or one whose target the
    step moves itself (a queue filling up, a sharpening teacher)."""
    return adversarial(ctx, probe) or bool(probe.self_updated)


def _exempt(ctx: CheckContext, names: Sequence[str]) -> list[str]:
    spec = ctx.spec
    patterns = [*spec.frozen, *spec.unused, *getattr(spec, "ema", ())] if spec else []
    return [n for n in names if not any(fnmatch.fnmatchcase(n, p) for p in patterns)]


def _zero_group(ctx: CheckContext, run: RateRun) -> Finding | None:
    trainable = {n for n, p in ctx.model.named_parameters() if p.requires_grad}
    for index, group in enumerate(run.groups):
        names = _exempt(ctx, [n for n in group["names"] if n in trainable])
        if group.get("lr") == 0 and names:
            shown = ", ".join(names[:4]) + (f" and {len(names) - 4} more" if len(names) > 4
                                            else "")
            return Finding(
                "learning.learning_rate", Status.FAILED,
                f"parameter group {index} of {run.optimizer} has learning rate 0, so {shown} "
                "never change: a missing config key or a freeze meant for other layers; give "
                "the group a rate, or declare the parameters frozen=[...] if intended",
                where=ctx.where_parameters(names))
    return None


def _divergence(ctx: CheckContext, run: RateRun) -> Finding | None:
    losses = run.losses
    for scale in LOWER_RATES:
        lower = rate_run(ctx, scale)
        if diverged(lower.losses) or not _settles(lower.losses):
            continue
        worst = max(losses) if run.finite else math.inf
        return _against_lower_rate(
            ctx, Status.FAILED, run, lower, scale,
            f"the loss diverges with {run.optimizer}: {losses[0]:.4g} -> {worst:.4g} within "
            f"{len(losses) - 1} steps on one batch, while at {scale:g}x the learning rate it "
            f"goes {lower.losses[0]:.4g} -> {lower.losses[-1]:.4g}: the learning rate is too "
            f"high for this model and loss scale; lower it (about {scale:g}x)")
    return None


def _against_lower_rate(ctx: CheckContext, status: Status, run: RateRun, lower: RateRun,
                        scale: float, message: str) -> Finding:
    """A finding read from the declared rate's run beside a lower rate's: both curves as
    evidence, the momentum note appended."""
    return Finding("learning.learning_rate", status, message + _momentum_note(run),
                   where=_optimizer_line(ctx),
                   data={"curves": {f"lr x1 ({run.optimizer})": curve(run.losses),
                                    f"lr x{scale:g}": curve(lower.losses)}})


def _overshoot(ctx: CheckContext, run: RateRun) -> Finding | None:
    losses = run.losses
    if not run.declared or not run.finite or len(losses) < 2 or losses[0] <= 0:
        return None
    moved = {k: v for k, v in run.first_update.items() if math.isfinite(v)}
    if not moved or max(moved.values()) < OVERSHOOT or max(losses) < BLOW_UP * losses[0]:
        return None
    lower = rate_run(ctx, LOWER_RATES[0])
    if not lower.finite or max(lower.losses) >= BLOW_UP * lower.losses[0]:
        return None
    layer = max(moved, key=lambda k: moved[k])
    return _against_lower_rate(
        ctx, Status.WARNED, run, lower, LOWER_RATES[0],
        f"the learning rate of {run.optimizer} is too high: the first step moves layer "
        f"{layer} by {moved[layer]:.3g}x its own norm and the loss spikes {losses[0]:.4g} -> "
        f"{max(losses):.4g} before it settles, while at {LOWER_RATES[0]:g}x the rate it "
        f"never rises above {max(lower.losses):.4g}; lower it (about {LOWER_RATES[0]:g}x)")


def _crawl(ctx: CheckContext, run: RateRun) -> Finding | None:
    moved = [v for v in run.first_update.values() if math.isfinite(v)]
    if not run.declared or not moved or not run.finite or max(moved) == 0:
        return None  # nothing moved at all: no gradient, or not held (training.update)
    change = abs(run.losses[-1] - run.losses[0]) / max(abs(run.losses[0]), 1e-12)
    if max(moved) >= CRAWL or change >= STILL:
        return None
    return Finding(
        "learning.learning_rate", Status.WARNED,
        f"the learning rate of {run.optimizer} barely moves the weights: the first step "
        f"changes each layer by at most {max(moved):.2g} of its norm (1e-3 to 1e-2 is usual) "
        f"and the loss goes {run.losses[0]:.4g} -> {run.losses[-1]:.4g} in "
        f"{len(run.losses) - 1} steps; raise the learning rate (1e-3 for Adam, 1e-2 to 1e-1 "
        "for SGD are common starts)",
        where=_optimizer_line(ctx), data={"curves": {run.optimizer: curve(run.losses)}})


def _decay(ctx: CheckContext, run: RateRun, probe: InitProbe) -> Finding | None:
    if not run.finite:
        return None
    for group, shrink in zip(run.groups, run.shrink, strict=False):
        decay = float(group.get("weight_decay") or 0.0)
        grad = math.sqrt(sum(probe.grad_norms.get(n, 0.0) ** 2 for n in group["names"]))
        weight = math.sqrt(sum(probe.weight_norms.get(n, 0.0) ** 2 for n in group["names"]))
        if decay <= 0 or grad <= 0 or shrink > COLLAPSE:
            continue
        pull = decay * weight / grad
        if pull < DECAY_DOMINATES:
            continue
        return Finding(
            "learning.learning_rate", Status.WARNED,
            f"weight decay {decay:g} in {run.optimizer} pulls the weights towards 0 "
            f"{pull:.3g}x harder than the loss's gradient: in {len(run.losses) - 1} steps "
            f"they shrink to {shrink:.2g} of their norm and the model collapses towards a "
            f"constant (loss {run.losses[0]:.4g} -> {run.losses[-1]:.4g}); use weight decay "
            "around 1e-4 to 5e-4 (SGD) or 1e-2 (AdamW)",
            where=_optimizer_line(ctx), data={"curves": {run.optimizer: curve(run.losses)}})
    return None


def _momentum_note(run: RateRun) -> str:
    momentum = max((g.get("momentum") or 0.0 for g in run.groups), default=0.0)
    lr = run.groups[0].get("lr", 0.0) if run.groups else 0.0
    return (f"; momentum {momentum:g} makes the effective step lr / (1 - momentum) = "
            f"{lr / (1 - momentum):.3g}, use 0.9" if momentum >= HIGH_MOMENTUM else "")


def _optimizer_line(ctx: CheckContext) -> tuple[str, int] | None:
    spec = ctx.spec
    if spec is not None and spec.optimizer is not None:
        found = ctx.locator.for_function(spec.optimizer)
        if found:
            return found
    return ctx.where_factory() or ctx.where_model()


@finder("learning.learning_rate")
def find(ctx: CheckContext) -> Finding | None:
    spec = ctx.spec
    if spec is None or not spec.has_real_loss:
        raise Skip("no loss or step declared: the surrogate loss says nothing about the rate")
    if spec.optimizer is None:
        raise Skip("no optimizer declared: no learning rate of yours to judge (declare "
                   "optimizer= to have its rate, momentum and weight decay checked)")
    probe = init_probe(ctx)
    run = rate_run(ctx)
    found = _zero_group(ctx, run)
    # a step that draws its own noise (a diffusion timestep) can look like a divergence
    if found is None and diverged(run.losses, lenient(ctx, probe)):
        if _other_cause(ctx):
            return None
        found = _divergence(ctx, run)
    return found or _overshoot(ctx, run) or _crawl(ctx, run) or _decay(ctx, run, probe)


def _other_cause(ctx: CheckContext) -> str:
    """The diagnostic that explains a divergence better than the rate (an exploding init,
    raw inputs): a lower rate only hides it."""
    for check_id in ("learning.gradient_flow", "learning.input_scale"):
        try:
            found = FINDERS[check_id](ctx)
        except Skip:
            continue
        if found is not None and (check_id != "learning.gradient_flow"
                                  or "explode" in found.message):
            return check_id
    return ""


@check("learning.learning_rate")
def learning_rate(ctx: CheckContext) -> Outcome:
    found = find(ctx)
    if found is not None:
        return found.outcome()
    run = rate_run(ctx)
    if diverged(run.losses, lenient(ctx, init_probe(ctx))):
        other = _other_cause(ctx)
        if other:
            raise Skip(f"the loss diverges with {run.optimizer}, but {other} names the cause "
                       "(a lower rate would only hide it)")
        raise Skip(f"the loss diverges with {run.optimizer} and at "
                   f"{' and '.join(f'{s:g}x' for s in LOWER_RATES)} its rate too: not the "
                   "learning rate (see learning.gradient_flow and learning.input_scale)")
    moved = max((v for v in run.first_update.values() if math.isfinite(v)), default=0.0)
    return passed(f"{run.optimizer}: loss {run.losses[0]:.4g} -> {run.losses[-1]:.4g} in "
                  f"{len(run.losses) - 1} steps on one batch; the first step moves a layer by "
                  f"up to {moved:.2g} of its norm",
                  data={"curves": {run.optimizer: curve(run.losses)}})
