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
    return _loss_itself(ctx)


@check("learning.output_vs_loss")
def output_vs_loss(ctx: CheckContext) -> Outcome:
    found = find(ctx)
    probe = init_probe(ctx)
    if not probe.losses:
        raise Skip("the loss calls no torch loss function (custom loss): nothing to match "
                   "the output against")
    if found is not None and found.check != "learning.output_vs_loss":
        raise Skip(f"the loss itself is at fault, not the output activation (see "
                   f"{found.check})")
    names = ", ".join(sorted({LOSS_NAMES.get(c.op, c.op) for c in probe.losses}))
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


def _constant_softmax(ctx: CheckContext, call: LossCall) -> Finding | None:
    source = call.source
    if source is None or source.op not in ("softmax", "log_softmax") or source.dim is None:
        return None
    size = source.shape[source.dim] if -len(source.shape) <= source.dim < len(source.shape) \
        else 0
    if size != 1:
        return None
    value = "1" if source.op == "softmax" else "0"
    return Finding(
        "learning.output_vs_loss", Status.FAILED,
        f"{source.label} takes a {source.op} over dim {source.dim}, which has size 1: the "
        f"output is always {value} whatever the input, so {_name(call)} gets a constant and "
        "no gradient reaches the model; for one output unit use a sigmoid (or no activation "
        "with BCEWithLogitsLoss), or output one unit per class",
        where=_where(ctx, source))


def _nll_activation(ctx: CheckContext, call: LossCall) -> Finding | None:
    """NLLLoss fed a sigmoid/softmax output (raw scores are training.loss_sanity's)."""
    if call.op != "nll_loss" or call.input.dim() < 2 or not call.input.is_floating_point():
        return None
    source = call.source
    if source is None or source.op not in ("sigmoid", "softmax"):
        return None
    return Finding(
        "learning.output_vs_loss", Status.FAILED,
        f"NLLLoss is fed the {source.op} output of {source.label}: it expects "
        f"log-probabilities, so it returns minus the {source.op} value — negative, "
        "with no floor to learn towards; end the model with "
        "nn.LogSoftmax(dim=1) for NLLLoss, or return raw logits to CrossEntropyLoss",
        where=_where(ctx, source))


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
    return Finding(
        "learning.output_vs_loss", Status.FAILED,
        f"{source.label} squashes the output into {span}, but {outside:.0%} of the "
        f"{_name(call)} targets lie outside it ({float(target.min()):.3g} to "
        f"{float(target.max()):.3g}): the model cannot reach them; drop the output "
        f"{source.op} (a linear output for regression) or rescale the targets into its range",
        where=_where(ctx, source))


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
