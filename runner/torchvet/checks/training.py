"""training.*: the model can learn — a loss, gradients everywhere, parameters that move."""

from __future__ import annotations

import fnmatch
import math
from collections.abc import Sequence

import torch

from ..unit.context import CheckContext
from ..unit.losses import LossProblem
from ..unit.pytree import floating_leaves
from ..unit.text import one_line
from ..verdict import DependencyFailed, Location, Outcome, Skip, failed, passed, warned
from .causes import gradient_causes
from .causes.findings import cause_phrase, curve, likely_causes
from .registry import check
from .shared import loss_capture as loss_causes
from .shared.forward_warnings import forward_warnings
from .shared.one_batch_fit import Fit, attempts, fit_one_batch
from .shared.probe import InitProbe, adversarial, init_probe
from .shared.training_run import (
    TRAIN_STEPS,
    TrainingFailure,
    TrainingTrace,
    trace_failure,
    training_trace,
)


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
    failure = trace_failure(ctx, "loss")
    trace = training_trace(ctx)
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
    trace = training_trace(ctx)
    failure = trace.failure
    if failure is not None and failure.stage == "loss" and trace.losses:
        failure = None  # a later step's loss broke; the gradients seen before it stand
    else:
        failure = trace_failure(ctx, "backward")
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
    failure = trace_failure(ctx, "optimizer")  # an earlier stage's failure skips
    if failure is not None:
        return _failure(failure, "the optimizer raised")
    trace = training_trace(ctx)
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
    trace_failure(ctx, "optimizer")
    trace = training_trace(ctx)
    spec = ctx.spec
    assert spec is not None
    everything = [*trace.frozen, *trace.trainable]
    declared = matching(everything, spec.frozen)
    ema = matching(everything, spec.ema)
    by_model = [n for n in trace.frozen
                if n in trace.self_moved and n not in trace.optimizer_moved]
    undeclared = [n for n in trace.frozen
                  if n not in declared and n not in ema and n not in by_model]
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
    if undeclared:  # fixed embeddings, frozen backbones: usually intended
        return warned(
            f"{listing(undeclared)} has requires_grad=False but is not declared frozen and "
            "nothing updates it: a freeze that was never undone? if intended, declare "
            f"frozen={suggest_patterns(undeclared, everything)}",
            where=ctx.where_parameters(undeclared),
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
    if not spec.within_overfit_budget(n_params):
        raise Skip(
            f"{n_params:,} trainable parameters exceed the overfit budget of "
            f"{spec.overfit_max_params:,}; raise overfit_max_params in [tool.torchvet] to run it"
        )
    trace_failure(ctx, "optimizer")
    probe = init_probe(ctx)
    if adversarial(ctx, probe):
        raise Skip(
            "the step sums opposing objectives (it switches requires_grad of "
            f"{listing(probe.toggled or ['its parameters'], 3)} inside the step, as a GAN "
            "does; or training=\"adversarial\" is declared): that sum need not fall on one "
            "batch, so overfitting it proves nothing"
        )
    fits = []
    for label, key in attempts(ctx):
        fit = fit_one_batch(ctx, label, key)
        fits.append(fit)
        if fit.state in ("reached", "falling", "near"):
            return passed(fit.summary(), data={"curves": {f.label: curve(f.losses)
                                                          for f in fits}})
    return _plateau(ctx, probe, fits)


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


__all__ = ["TRAIN_STEPS", "gradients", "loss", "loss_sanity", "update"]
