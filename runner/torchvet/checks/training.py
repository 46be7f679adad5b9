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
from ..unit.pytree import floating_leaves
from ..unit.seeding import derived_seed, seed_everything
from ..unit.training_run import validate_loss
from ..unit.training_types import TRAIN_STEPS, LossProblem, TrainingFailure, TrainingTrace
from . import gradient_causes
from . import loss as loss_causes
from .base import DependencyFailed, Location, Outcome, Skip, check, failed, passed, warned
from .forward import capture_loss_calls, forward_warnings
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
    trace = ctx.training_trace()
    if failure is not None and trace.losses:
        return _later_loss(ctx, failure, trace.losses, trace.grad_states)
    if failure is not None:
        return _loss_failure(ctx, failure)
    source = "surrogate loss" if ctx.uses_surrogate else "loss"
    origins = ctx.spec.sources if ctx.spec is not None else {}
    origin = f" {origins['loss']}" if origins.get("loss") else ""
    optimizer = f"; optimizer: {origins['optimizer']}" if origins.get("optimizer") else ""
    return passed(f"{source} {trace.losses[0]:.4g}{origin} is a finite scalar that requires "
                  f"grad{optimizer}")


def _loss_failure(ctx: CheckContext, failure: TrainingFailure) -> Outcome:
    """The first loss fails: the forward's fault (forward.runs/finite own it), or the loss's."""
    forward_fault = _eval_forward_fault(ctx)
    if forward_fault:
        raise DependencyFailed(forward_fault)
    spec = ctx.spec
    assert spec is not None
    batch = ctx.train_batch_size
    inputs, target = ctx.inputs(batch), ctx.target(batch)
    if isinstance(failure.error, LossProblem):
        culprit = spec.step or spec.loss
        where = (ctx.locator.for_function(culprit) if culprit is not None else None)
        message = str(failure.error)
        if "cannot be backpropagated" in message:
            found = loss_causes.grad_disabled(ctx, inputs, target)
            if found is not None:
                reason, (file, line) = found
                return failed(f"{message}; the culprit: {reason} at {file}:{line}, so nothing "
                              "in forward is recorded for backward (keep inference_mode/no_grad "
                              "for predict(), out of forward)", where=(file, line))
        return failed(message, where=where or failure.where)
    cause = loss_causes.class_dim_last(ctx, inputs, target)
    if cause is not None:
        return failed(f"the loss raised {one_line(failure.error)}: {cause}",
                      failure.details, failure.where)
    return _failure(failure, "the training step raised")


def _eval_forward_fault(ctx: CheckContext) -> str:
    """A skip reason when the eval forward already fails or is non-finite, else ''."""
    try:
        out = ctx.eval_output()
    except DependencyFailed as exc:
        return str(exc)
    except Exception as exc:
        return f"not run: the forward pass raised {one_line(exc)} (see forward.runs)"
    if any(not bool(torch.isfinite(t).all()) for _, t in floating_leaves(out)):
        return "not run: the model's outputs already hold NaN/Inf (see forward.finite)"
    return ""


def _later_loss(ctx: CheckContext, failure: TrainingFailure, losses: list[float],
                grad_states: dict[str, list[str]]) -> Outcome:
    """The loss was fine at init and broke after optimizer steps."""
    step = len(losses) + 1
    if any("nonfinite" in states for states in grad_states.values()):
        return passed(f"the loss at init ({losses[0]:.4g}) is a finite scalar that requires "
                      f"grad; it turns non-finite at step {step} because the previous "
                      "step's gradients were NaN/Inf (see training.gradients)")
    return failed(
        f"the loss is finite at init ({losses[0]:.4g}) but the training step fails at step "
        f"{step}: {one_line(failure.error)}; the first optimizer steps made the model "
        "diverge (a learning rate too high for this loss's scale?)",
        failure.details, failure.where)


@check("training.loss_sanity")
def loss_sanity(ctx: CheckContext) -> Outcome:
    found = loss_causes.probe(ctx)
    for problem in (loss_causes.target_broadcast(found), loss_causes.single_class(found),
                    loss_causes.below_floor(found)):
        if problem:
            return failed(problem, where=_where_loss(ctx))
    ignored = loss_causes.ignored_outputs(ctx, found)
    if ignored:
        text, starved = ignored
        patterns = suggest_patterns(starved, [n for n, _ in ctx.model.named_parameters()])
        return failed(f"{text}; if intended, declare unused={patterns}",
                      where=ctx.where_parameters(starved))
    summed = loss_causes.sums_over_batch(ctx)
    if summed:
        return warned(summed, where=_where_loss(ctx))
    return passed(f"loss {found.value:.4g}: above its floor, uses every output, a mean over "
                  "the batch")


def _where_loss(ctx: CheckContext) -> Location:
    spec = ctx.spec
    culprit = (spec.step or spec.loss) if spec is not None else None
    return (ctx.locator.for_function(culprit) if culprit is not None else None) or (
        ctx.where_factory())


@check("training.gradients")
def gradients(ctx: CheckContext) -> Outcome:
    trace = ctx.training_trace()
    failure = trace.failure
    if failure is not None and failure.stage == "loss" and trace.losses:
        failure = None  # a later step's loss broke; the gradients seen before it stand
    else:
        failure = ctx.trace_failure("backward")
    if failure is not None:
        if "inplace operation" in str(failure.error):
            culprit = failure.culprit or "an in-place op (x += ..., relu_(), x[...] = ...)"
            return failed(
                f"backward fails: {culprit}, but backward needs the original values; use the "
                f"out-of-place form (h = h + 1, torch.relu(h)) — {one_line(failure.error)}",
                failure.details, failure.where)
        return _failure(failure, "backward raised")
    spec = ctx.spec
    assert spec is not None
    exempt = set(matching(trace.trainable, spec.unused + spec.frozen + spec.ema))
    averaged = [n for n in trace.trainable if n not in exempt and trace.moved_by_model_only(n)]
    exempt.update(averaged)
    states = {n: s for n, s in trace.grad_states.items() if n not in exempt}
    nonfinite = [n for n, s in states.items() if "nonfinite" in s]
    if nonfinite:
        origin = gradient_causes.nan_origin(ctx)
        if origin is not None:
            return failed(f"{listing(nonfinite)} received a NaN/Inf gradient: {origin[0]}",
                          where=origin[1] or ctx.where_parameters(nonfinite))
        return failed(
            f"{listing(nonfinite)} received a NaN/Inf gradient: an op with an unbounded "
            "derivative (sqrt or log at 0, division by a tiny value, pow of a negative); clamp "
            "its input or add an epsilon",
            where=ctx.where_parameters(nonfinite),
        )
    never = [n for n, s in states.items() if "ok" not in s]
    if not never:
        return passed(f"{len(states)} trainable parameter(s) received gradients"
                      + _model_updates_note(averaged, trace.trainable))
    missing = [n for n in never if all(s == "none" for s in states[n])]
    zero = [n for n in never if n not in missing]
    steps = trace.steps
    if missing:
        return _missing(ctx, missing, trace.trainable, steps)
    return _all_zero(ctx, zero, states, trace.trainable, steps)


def _missing(ctx: CheckContext, missing: list[str], trainable: list[str], steps: int
             ) -> Outcome:
    declare = f"if intended, declare unused={suggest_patterns(missing, trainable)}"
    details = "\n".join(f"{n}: grad None in {steps} step(s)" for n in missing)
    replaced = gradient_causes.replaced_in_forward(ctx, missing)
    if replaced is not None:
        return failed(f"{listing(missing)} received no gradient: {replaced[0]}", details,
                      replaced[1] or ctx.where_parameters(missing))
    ignored = _ignored_by_loss(ctx, missing)
    if ignored:
        return failed(f"{listing(missing)} received no gradient: {ignored} (see "
                      f"training.loss_sanity); {declare}", details, ctx.where_parameters(missing))
    warning = _detaching_warning(ctx)
    if warning is not None:
        return failed(f"{listing(missing)} received no gradient: {warning[0]}; {declare}",
                      details, warning[1])
    return failed(
        f"{listing(missing)} received no gradient: the branch is detached or unused "
        f"(.detach(), torch.no_grad(), .item()/.numpy(), or a layer that forward never "
        f"calls); {declare}",
        details,
        ctx.where_parameters(missing),
    )


def _ignored_by_loss(ctx: CheckContext, names: list[str]) -> str:
    if ctx.uses_surrogate:
        return ""
    try:
        found = loss_causes.probe(ctx)
    except Skip:
        return ""
    if not set(names) & set(found.starved):
        return ""
    return f"they only feed {', '.join(found.ignored)}, which the loss ignores"


def _detaching_warning(ctx: CheckContext) -> tuple[str, Location] | None:
    caught, _ = forward_warnings(ctx)
    for w in caught:
        if "To copy construct from a tensor" in w.message and w.where is not None:
            return (f"torch.tensor(t) at {w.where[0]}:{w.where[1]} copies t out of the "
                    "autograd graph (torch warns 'To copy construct from a tensor...'), so "
                    "nothing before it gets a gradient: use t.clone() or t.to(dtype)", w.where)
    return None


def _all_zero(ctx: CheckContext, zero: list[str], states: dict[str, list[str]],
              trainable: list[str], steps: int) -> Outcome:
    details = "\n".join(f"{n}: {states[n]}" for n in zero)
    declare = f"if intended, declare unused={suggest_patterns(zero, trainable)}"
    zeros = gradient_causes.zero_initialised(ctx)
    if zeros:
        return failed(
            f"{listing(zero)} received an all-zero gradient in {steps} step(s): "
            f"{listing(zeros)} {'is' if len(zeros) == 1 else 'are'} all zeros at init "
            "(nn.init.zeros_ or a constant init), so every hidden unit computes the same "
            "value and sends back a zero gradient: keep the default random init (zero at "
            "most the last layer or the biases)",
            details, ctx.where_parameters(zeros))
    if not ctx.uses_surrogate and len(zero) == len(states):
        try:
            found = loss_causes.probe(ctx)
        except Skip:
            found = None
        constant = found and (loss_causes.single_class(found) or loss_causes.below_floor(found))
        if constant:
            return failed(f"every parameter received an all-zero gradient in {steps} step(s): "
                          f"the loss does not depend on the model — {constant} (see "
                          "training.loss_sanity)", details, _where_loss(ctx))
    return failed(
        f"{listing(zero)} received an all-zero gradient in {steps} step(s): the output does "
        "not depend on it (multiplied by 0, a dead ReLU, a mask that removes everything); "
        f"{declare}",
        details,
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
    exempt = set(matching(trace.trainable, spec.unused + spec.frozen + spec.ema))
    stuck = [n for n in trace.trainable if n not in exempt
             and n not in trace.optimizer_moved and not trace.moved_by_model_only(n)]
    if not stuck:
        averaged = [n for n in trace.trainable
                    if n not in exempt and n not in trace.optimizer_moved]
        return passed(f"every trainable parameter changed within {trace.steps} step(s)"
                      + _accumulation_note(trace)
                      + _model_updates_note(averaged, trace.trainable))
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
    everything = [*trace.frozen, *trace.trainable]
    declared = matching(everything, spec.frozen)
    ema = matching(everything, spec.ema)
    by_model = [n for n in trace.frozen
                if n in trace.self_moved and n not in trace.optimizer_moved]
    undeclared = [n for n in trace.frozen
                  if n not in declared and n not in ema and n not in by_model]
    if undeclared:
        return failed(
            f"{listing(undeclared)} has requires_grad=False but is not declared frozen and "
            "nothing updates it: a freeze that was never undone? if intended, declare "
            f"frozen={suggest_patterns(undeclared, everything)}",
            where=ctx.where_parameters(undeclared),
        )
    trained = [n for n in [*declared, *ema] if n in trace.optimizer_moved]
    if trained:
        what = "declared frozen" if trained[0] in declared else "declared ema"
        return failed(
            f"{listing(trained)} is {what} but changed during training: the optimizer "
            "updated it; set requires_grad_(False) on it or leave it out of the optimizer "
            "(an EMA target is updated under torch.no_grad() by your own code, not by the "
            "optimizer)",
            where=ctx.where_parameters(trained),
        )
    moved_by_model = [n for n in everything
                      if n in trace.self_moved and n not in trace.optimizer_moved
                      and (n in declared or n in ema or n in by_model)]
    kept = [n for n in declared if n not in moved_by_model]
    summary = (f"{len(kept)} declared frozen parameter(s) stayed unchanged" if kept
               else "the optimizer changed no frozen parameter" if moved_by_model
               else "no frozen parameters")
    return passed(summary + _model_updates_note(moved_by_model, everything))


def _model_updates_note(names: Sequence[str], all_names: Sequence[str]) -> str:
    """The parameters the model's own code moved without the optimizer, as information."""
    if not names:
        return ""
    return (f"; {len(names)} parameter(s) updated by the model's own code, not by the "
            f"optimizer (EMA/averaged copies: {suggest_patterns(names, all_names)})")


def _accumulation_note(trace: TrainingTrace) -> str:
    if trace.steps <= TRAIN_STEPS:
        return ""
    return (f" (the optimizer first changed them at call {trace.steps}: it accumulates "
            "gradients over several calls)")


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
        _within_budget(ctx, time.perf_counter() - started, losses, goal)
    return losses, goal


def _within_budget(ctx: CheckContext, elapsed: float, losses: list[float], goal: float
                   ) -> None:
    """A safety stop, not a forecast: the verdict is decided by step counts, and only a
    run that truly outlasts the budget is skipped (a loaded machine merely runs slower)."""
    budget = ctx.budget("training.overfit")
    if elapsed <= budget:
        return
    per_step = elapsed / len(losses)
    needed = per_step * OVERFIT_STEPS * len(OVERFIT_LEARNING_RATES)
    raise Skip(
        f"the {budget:g} s budget of training.overfit ran out after {len(losses)} step(s) "
        f"({per_step:.2f} s each) with the loss at {losses[-1]:.4g}, not yet {goal:.4g}; "
        f'raise it with [tool.torchvet] budgets = {{ "training.overfit" = '
        f"{max(needed * 1.2, 1):.0f} }}"
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


__all__ = ["TRAIN_STEPS", "gradients", "loss", "loss_sanity", "update"]
