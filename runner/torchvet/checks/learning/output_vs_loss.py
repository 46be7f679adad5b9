"""learning.output_vs_loss: the model's last activation fits the loss it feeds.

Read from the probe's record of every torch loss call and the activation that produced
its input (through views): probabilities into a logit loss (this is the one home of the
old forward.probabilities), a sigmoid or softmax into NLLLoss, a softmax over a size-1
dimension, a bounded output that cannot reach the targets, a ReLU on logits. What is wrong
with the loss itself (a target that broadcasts, one class, NLL fed raw scores) is
training.loss_sanity's verdict (checks.shared.loss_capture); it is offered to training.overfit as a
mechanism from here, and this check skips pointing at it.
"""

from __future__ import annotations

import math

import torch

from ...results import Status
from ...unit.context import CheckContext
from ...verdict import Outcome, Skip
from ..causes.findings import Finding, finder, report, where_module
from ..registry import check
from ..shared import loss_capture as loss_causes
from ..shared.loss_behaviour import LossBehaviour, loss_behaviour, output_activation
from ..shared.probe import ActivationCall, LossCall, init_probe

LOGIT_LOSSES = {
    "cross_entropy": "CrossEntropyLoss",
    "binary_cross_entropy_with_logits": "BCEWithLogitsLoss",
}
LOSS_NAMES = {**LOGIT_LOSSES, "nll_loss": "NLLLoss", "binary_cross_entropy": "BCELoss",
              "mse_loss": "MSELoss", "l1_loss": "L1Loss", "smooth_l1_loss": "SmoothL1Loss",
              "huber_loss": "HuberLoss", "kl_div": "KLDivLoss",
              "poisson_nll_loss": "PoissonNLLLoss", "soft_margin_loss": "SoftMarginLoss"}
REGRESSION = {"mse_loss", "l1_loss", "smooth_l1_loss", "huber_loss"}
RANGES = {"sigmoid": (0.0, 1.0), "softmax": (0.0, 1.0), "tanh": (-1.0, 1.0),
          "relu": (0.0, math.inf), "relu6": (0.0, 6.0), "softplus": (0.0, math.inf),
          "hardsigmoid": (0.0, 1.0), "hardtanh": (-1.0, 1.0)}
OUT_OF_RANGE = 0.5  # share of targets an output range must miss to be a certain cause
SIGNED = 0.05  # share of negative regression targets a ReLU output cannot reach, to warn


@finder("learning.output_vs_loss")
def find(ctx: CheckContext) -> Finding | None:
    spec = ctx.spec
    if spec is None or not spec.has_real_loss:
        raise Skip("no loss or step declared: the surrogate loss is torchvet's own")
    probe = init_probe(ctx)
    for call in probe.losses:
        for rule in (_constant_softmax, _nll_activation, _probabilities_into_logits, _range,
                     _relu_logits):
            found = rule(ctx, call)
            if found is not None:
                return found
    behaviour = loss_behaviour(ctx)
    if behaviour is not None:
        for probe_rule in (_nonfinite, _wrong_class, _renormalised_sigmoid):
            found = probe_rule(ctx, behaviour)
            if found is not None:
                return found
    signed = _signed_regression(ctx)
    if signed is not None:
        return signed
    return _loss_itself(ctx)


@check("learning.output_vs_loss")
def output_vs_loss(ctx: CheckContext) -> Outcome:
    found = find(ctx)
    probe = init_probe(ctx)
    if found is None and not probe.losses and loss_behaviour(ctx) is None:
        raise Skip("the loss calls no torch loss function and the output has no activation "
                   "to probe it with: nothing to match the output against")
    if found is not None and found.check != "learning.output_vs_loss":
        raise Skip(f"the loss itself is at fault, not the output activation (see "
                   f"{found.check})")
    names = ", ".join(sorted({LOSS_NAMES.get(c.op, c.op) for c in probe.losses})
                      or [_loss_label(ctx)])
    return report(found, f"the output fits {names}")


def _loss_itself(ctx: CheckContext) -> Finding | None:
    """A target that broadcasts, one class, NLL fed scores: training.loss_sanity's
    verdicts (checks.shared.loss_capture is their one home), offered here as a mechanism
    for a plateau."""
    found = loss_causes.probe(ctx)
    for problem in (loss_causes.target_broadcast(found), loss_causes.single_class(found),
                    loss_causes.below_floor(found)):
        if problem:
            return Finding("training.loss_sanity", Status.FAILED, problem,
                           where=ctx.where_model())
    return None


def _name(call: LossCall) -> str:
    return LOSS_NAMES.get(call.op, call.op)


def _where(ctx: CheckContext, source: ActivationCall | None) -> tuple[str, int] | None:
    if source is None:
        return ctx.where_model()
    return source.where or where_module(ctx, source.module)


def _failure(ctx: CheckContext, source: ActivationCall | None, message: str) -> Finding:
    """A certain mismatch of the activation ``source`` and the loss, at its line."""
    return Finding("learning.output_vs_loss", Status.FAILED, message, where=_where(ctx, source))


def _constant_softmax(ctx: CheckContext, call: LossCall) -> Finding | None:
    source = call.source
    if source is None or source.op not in ("softmax", "log_softmax") or source.dim is None:
        return None
    size = source.shape[source.dim] if -len(source.shape) <= source.dim < len(source.shape) \
        else 0
    if size != 1:
        return None
    value = "1" if source.op == "softmax" else "0"
    return _failure(
        ctx, source,
        f"{source.label} takes a {source.op} over dim {source.dim}, which has size 1: the "
        f"output is always {value} whatever the input, so {_name(call)} gets a constant and "
        "no gradient reaches the model; for one output unit use a sigmoid (or no activation "
        "with BCEWithLogitsLoss), or output one unit per class")


def _nll_activation(ctx: CheckContext, call: LossCall) -> Finding | None:
    """NLLLoss fed a sigmoid/softmax output (raw scores are training.loss_sanity's)."""
    if call.op != "nll_loss" or call.input.dim() < 2 or not call.input.is_floating_point():
        return None
    source = call.source
    if source is None or source.op not in ("sigmoid", "softmax"):
        return None
    return _failure(
        ctx, source,
        f"NLLLoss is fed the {source.op} output of {source.label}: it expects "
        f"log-probabilities, so it returns minus the {source.op} value — negative, "
        "with no floor to learn towards; end the model with "
        "nn.LogSoftmax(dim=1) for NLLLoss, or return raw logits to CrossEntropyLoss")


def _probabilities_into_logits(ctx: CheckContext, call: LossCall) -> Finding | None:
    if call.op not in LOGIT_LOSSES:
        return None
    source = call.source
    fed = source.op if source is not None and source.op in ("softmax", "sigmoid") else None
    x = call.input
    if fed is None and call.op == "cross_entropy" and x.dim() >= 2 and x.is_floating_point():
        sums = x.double().sum(1)
        if bool(((x >= 0) & (x <= 1)).all()) and bool(torch.allclose(
                sums, torch.ones_like(sums), atol=1e-4)):
            fed = "softmax"
    if fed is None:
        return None
    where = f" of {source.label}" if source is not None else ""
    summing = " summing to 1" if fed == "softmax" else ""
    return Finding(
        "learning.output_vs_loss", Status.WARNED,
        f"{LOGIT_LOSSES[call.op]} is fed the {fed} output{where} (values in [0, 1]{summing}), "
        f"but it applies {'log-softmax' if call.op == 'cross_entropy' else 'a sigmoid'} "
        "itself: the squashed scores barely move it and the loss stalls; return raw logits "
        f"from the model and apply {fed} only at inference",
        where=_where(ctx, source))


def _range(ctx: CheckContext, call: LossCall) -> Finding | None:
    source = call.source
    if call.op not in REGRESSION or source is None or source.op not in RANGES:
        return None
    if call.target is None or not call.target.is_floating_point():
        return None
    low, high = RANGES[source.op]
    target = call.target.double()
    margin = 0.05 * (high - low) if math.isfinite(high - low) else 0.0
    outside = float(((target < low - margin) | (target > high + margin)).double().mean())
    if outside < OUT_OF_RANGE:
        return None
    span = f"[{low:g}, {high:g}]" if math.isfinite(high) else f"[{low:g}, inf)"
    return _failure(
        ctx, source,
        f"{source.label} squashes the output into {span}, but {outside:.0%} of the "
        f"{_name(call)} targets lie outside it ({float(target.min()):.3g} to "
        f"{float(target.max()):.3g}): the model cannot reach them; drop the output "
        f"{source.op} (a linear output for regression) or rescale the targets into its range")


def _relu_logits(ctx: CheckContext, call: LossCall) -> Finding | None:
    source = call.source
    if call.op not in LOGIT_LOSSES or source is None or source.op not in ("relu", "relu6"):
        return None
    return Finding(
        "learning.output_vs_loss", Status.WARNED,
        f"{LOGIT_LOSSES[call.op]} is fed the {source.op} output of {source.label}: logits "
        "cannot go below 0, so a class can never be pushed down and units stuck at 0 pass "
        "no gradient; remove the activation after the last layer",
        where=_where(ctx, source))


def _loss_label(ctx: CheckContext) -> str:
    loss = ctx.spec.loss if ctx.spec is not None else None
    return getattr(loss, "__name__", None) or type(loss).__name__


def _nonfinite(ctx: CheckContext, found: LossBehaviour) -> Finding | None:
    """The activation reaches an output on which the loss is NaN or infinite."""
    if not found.nonfinite:
        return None
    source = found.activation
    return _failure(
        ctx, source,
        f"{source.label} can output {found.nonfinite}, and the loss {_loss_label(ctx)} is "
        "NaN or infinite there (it renormalises the row or takes the log of 0): a sample "
        "whose units all die poisons the step; end the model with a softmax for a "
        "categorical loss, or return logits to CrossEntropyLoss")


def _wrong_class(ctx: CheckContext, found: LossBehaviour) -> Finding | None:
    """The loss is no lower for the right class's one-hot than for a wrong one."""
    if found.right is None or found.wrong is None or not math.isfinite(found.right):
        return None
    if found.right < found.wrong:
        return None
    return Finding(
        "learning.output_vs_loss", Status.FAILED,
        f"the loss {_loss_label(ctx)} is {found.right:.4g} when {found.activation.label} "
        f"puts its mass on the right class and {found.wrong:.4g} on a wrong one: it does "
        "not reward the right class, so training moves away from it; check the sign of the "
        "loss and which output it reads",
        where=_where(ctx, found.activation))


def _renormalised_sigmoid(ctx: CheckContext, found: LossBehaviour) -> Finding | None:
    """Independent sigmoids under a loss that only sees the row's proportions."""
    if not found.renormalises or found.activation.op not in ("sigmoid", "sigmoid_"):
        return None
    return Finding(
        "learning.output_vs_loss", Status.WARNED,
        f"{found.activation.label} squashes each of the {found.shape[1]} outputs on its own, "
        f"but the loss {_loss_label(ctx)} is unchanged when a row is scaled (it "
        "renormalises the row, as a categorical cross-entropy on probabilities does): "
        "saturated units all read near 1 and their gradient vanishes; end the model with "
        "a softmax over the classes (or return logits to CrossEntropyLoss)",
        where=_where(ctx, found.activation))


def _signed_regression(ctx: CheckContext) -> Finding | None:
    """A ReLU on a regression output whose targets are partly negative."""
    source = output_activation(ctx)
    if source is None or source.op not in ("relu", "relu_", "relu6"):
        return None
    target = ctx.target(init_probe(ctx).batch)
    if (not isinstance(target, torch.Tensor) or not target.is_floating_point()
            or tuple(target.shape) != source.shape or target.numel() == 0):
        return None
    if bool(((target == 0) | (target == 1)).all()):
        return None  # labels, not values
    negative = float((target < 0).double().mean())
    if negative < SIGNED:
        return None
    return Finding(
        "learning.output_vs_loss", Status.WARNED,
        f"{source.label} ends a regression whose targets are signed: {negative:.0%} of "
        f"them are negative (down to {float(target.min()):.3g}), which a ReLU cannot "
        "output, and a unit pushed below 0 stops passing gradient (it dies at a constant "
        "0); drop the output ReLU (a linear output for regression)",
        where=_where(ctx, source))
