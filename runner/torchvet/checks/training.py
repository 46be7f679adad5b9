"""training.*: the model can learn — a loss, gradients everywhere, parameters that move."""

from __future__ import annotations

import fnmatch
import math
import time
from collections.abc import Sequence
from typing import Any

import torch

from ..unit.context import CheckContext
from ..unit.optim import Adam
from ..unit.seeding import derived_seed, seed_everything
from ..unit.training_run import validate_loss
from ..unit.training_types import TRAIN_STEPS, LossProblem, TrainingFailure
from .base import Outcome, Skip, check, failed, passed, warned
from .forward import capture_loss_calls
from .text import one_line

OVERFIT_STEPS = 50
# A single batch should be memorised fast: a bold rate first, a careful one if it diverges.
OVERFIT_LEARNING_RATES = (1e-2, 1e-3)


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
    origins = ctx.spec.sources if ctx.spec is not None else {}
    origin = f" {origins['loss']}" if origins.get("loss") else ""
    optimizer = f"; optimizer: {origins['optimizer']}" if origins.get("optimizer") else ""
    return passed(f"{source} {trace.losses[0]:.4g}{origin} is a finite scalar that requires "
                  f"grad{optimizer}")


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
    inputs = ctx.inputs(ctx.train_batch_size)
    target = ctx.target(ctx.train_batch_size)
    attempts = []
    for lr in OVERFIT_LEARNING_RATES:
        seed_everything(derived_seed(ctx.seed, "overfit"))
        model = ctx.fresh_copy().train()
        trainable = [p for p in model.parameters() if p.requires_grad]
        optimizer = Adam(trainable, lr=lr)
        losses, goal = _fit(ctx, model, optimizer, inputs, target)
        best = min(losses)
        if best <= goal and math.isfinite(best):
            return passed(
                f"loss {losses[0]:.4g} -> {best:.4g} in {len(losses) - 1} Adam step(s) at "
                f"lr {lr:g}"
            )
        attempts.append((lr, losses, goal))
    first = attempts[0][1][0]
    best = min(min(losses) for _, losses, _ in attempts)
    goal = attempts[0][2]
    return failed(
        f"the loss went from {first:.4g} to {best:.4g} (best) in {OVERFIT_STEPS} Adam steps "
        f"on one fixed batch (tried lr {', '.join(f'{lr:g}' for lr, _, _ in attempts)}), "
        f"never reaching {goal:.4g}: the model cannot fit a single batch — check that the "
        "loss uses the model's output and the right target, and that the parameters that "
        "matter are trainable",
        "\n".join(f"lr {lr:g}: " + ", ".join(f"{v:.4g}" for v in losses)
                  for lr, losses, _ in attempts),
        ctx.where_model(),
    )


def _fit(ctx: CheckContext, model: torch.nn.Module, optimizer: Adam,
         inputs: Any, target: Any) -> tuple[list[float], float]:
    """Up to OVERFIT_STEPS steps on one batch; stops once the loss has halved."""
    losses: list[float] = []
    goal = math.inf
    started = time.perf_counter()
    for _ in range(OVERFIT_STEPS + 1):
        optimizer.zero_grad(set_to_none=True)
        value = ctx.training_loss(model, inputs, target)
        validate_loss(value, False)
        losses.append(float(value.detach()))
        if len(losses) == 1:
            goal = losses[0] - 0.5 * abs(losses[0])
        if losses[-1] <= goal or not math.isfinite(losses[-1]) or len(losses) > OVERFIT_STEPS:
            break
        value.backward()
        optimizer.step()
        if len(losses) == 1:
            _fits_budget(ctx, time.perf_counter() - started)
    return losses, goal


def _fits_budget(ctx: CheckContext, step_seconds: float) -> None:
    """Skip up front when the steps this check may need cannot fit its budget."""
    budget = ctx.budget("training.overfit")
    needed = step_seconds * OVERFIT_STEPS * len(OVERFIT_LEARNING_RATES)
    if needed > budget:
        raise Skip(
            f"one training step takes {step_seconds:.2f} s, so up to "
            f"{OVERFIT_STEPS * len(OVERFIT_LEARNING_RATES)} steps would exceed the "
            f"{budget:g} s budget of training.overfit; raise it with [tool.torchvet] "
            f'budgets = {{ "training.overfit" = {max(needed * 1.2, 1):.0f} }}'
        )


LOSS_AT_INIT_BATCH = 16


@check("training.loss_at_init")
def loss_at_init(ctx: CheckContext) -> Outcome:
    capture = capture_loss_calls(ctx, max(LOSS_AT_INIT_BATCH, ctx.train_batch_size))
    calls = [(t, out) for name, t, out in capture.calls if name == "cross_entropy"]
    if not calls:
        raise Skip("the loss calls no cross_entropy")
    logits, value = calls[0]
    if logits.dim() < 2 or not isinstance(value, torch.Tensor) or value.dim() != 0:
        raise Skip("cross_entropy is not called on (batch, classes) logits with a mean")
    classes = int(logits.shape[1])
    expected = math.log(classes)
    got = float(value)
    margin = max(1.0, 0.5 * expected)
    if got <= expected + margin:
        return passed(f"cross-entropy at init {got:.3g} is near ln({classes}) = {expected:.3g}")
    return warned(
        f"cross-entropy at init is {got:.3g}, far above ln({classes}) = {expected:.3g}: the "
        "initial logits are too large or confidently wrong; scale down the last layer's init "
        "(e.g. zero-init or small std), and check the logits are not already scaled",
        where=ctx.where_model(),
    )


__all__ = ["TRAIN_STEPS", "gradients", "loss", "update"]
