"""learning.output_vs_loss: the model's last activation fits the loss it feeds.

Read from the probe's record of every torch loss call and the activation that produced
its input (through views): probabilities into a logit loss (this is the one home of the
old forward.probabilities), sigmoid or raw scores into NLLLoss, a softmax over a size-1
dimension, a bounded output that cannot reach the targets, a ReLU on logits, and a target
whose shape broadcasts against the output.
"""

from __future__ import annotations

import math

import torch

from ...results import Status
from ...unit.context import CheckContext
from ..base import Outcome, Skip, check
from ..text import shape_str
from .findings import Finding, finder, report, where_module
from .probe import ActivationCall, LossCall, init_probe

LOGIT_LOSSES = {
    "cross_entropy": "CrossEntropyLoss",
    "binary_cross_entropy_with_logits": "BCEWithLogitsLoss",
}
LOSS_NAMES = {**LOGIT_LOSSES, "nll_loss": "NLLLoss", "binary_cross_entropy": "BCELoss",
              "mse_loss": "MSELoss", "l1_loss": "L1Loss", "smooth_l1_loss": "SmoothL1Loss",
              "huber_loss": "HuberLoss", "kl_div": "KLDivLoss",
              "poisson_nll_loss": "PoissonNLLLoss", "soft_margin_loss": "SoftMarginLoss"}
REGRESSION = {"mse_loss", "l1_loss", "smooth_l1_loss", "huber_loss"}
ELEMENTWISE = REGRESSION | {"binary_cross_entropy", "binary_cross_entropy_with_logits",
                            "soft_margin_loss", "kl_div", "poisson_nll_loss"}
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
        for rule in (_broadcast, _constant_softmax, _nll_input, _probabilities_into_logits,
                     _range, _relu_logits):
            found = rule(ctx, call)
            if found is not None:
                return found
    return None


@check("learning.output_vs_loss")
def output_vs_loss(ctx: CheckContext) -> Outcome:
    found = find(ctx)
    probe = init_probe(ctx)
    if not probe.losses:
        raise Skip("the loss calls no torch loss function (custom loss): nothing to match "
                   "the output against")
    names = ", ".join(sorted({LOSS_NAMES.get(c.op, c.op) for c in probe.losses}))
    return report(found, f"the output fits {names}")


def _name(call: LossCall) -> str:
    return LOSS_NAMES.get(call.op, call.op)


def _where(ctx: CheckContext, source: ActivationCall | None) -> tuple[str, int] | None:
    if source is None:
        return ctx.where_model()
    return source.where or where_module(ctx, source.module)


def _broadcast(ctx: CheckContext, call: LossCall) -> Finding | None:
    if call.op not in ELEMENTWISE or call.target is None:
        return None
    a, b = tuple(call.input.shape), tuple(call.target.shape)
    if a == b:
        return None
    try:
        joint = tuple(torch.broadcast_shapes(a, b))
    except RuntimeError:
        return None
    if math.prod(joint) <= max(math.prod(a), math.prod(b)):
        return None
    return Finding(
        "learning.output_vs_loss", Status.FAILED,
        f"{_name(call)} gets the output {shape_str(a)} and the target {shape_str(b)}: they "
        f"broadcast to {shape_str(joint)}, so every output is compared with every target "
        "and the model can only learn their mean; make the shapes equal "
        "(target.view_as(output), or output.squeeze(-1))",
        where=ctx.where_model())


def _constant_softmax(ctx: CheckContext, call: LossCall) -> Finding | None:
    source = call.source
    if call.op == "cross_entropy" and call.input.dim() >= 2 and call.input.shape[1] == 1:
        return Finding(
            "learning.output_vs_loss", Status.FAILED,
            f"CrossEntropyLoss gets {shape_str(call.input.shape)}: one class, so its softmax "
            "is always 1, the loss constant and the gradient 0; for a binary target use "
            "BCEWithLogitsLoss with float 0/1 targets, or output 2 logits",
            where=_where(ctx, source))
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


def _nll_input(ctx: CheckContext, call: LossCall) -> Finding | None:
    if call.op != "nll_loss" or call.input.dim() < 2 or not call.input.is_floating_point():
        return None
    source = call.source
    if source is not None and source.op in ("sigmoid", "softmax"):
        return Finding(
            "learning.output_vs_loss", Status.FAILED,
            f"NLLLoss is fed the {source.op} output of {source.label}: it expects "
            f"log-probabilities, so it returns minus the {source.op} value — negative, "
            "with no floor to learn towards; end the model with "
            "nn.LogSoftmax(dim=1) for NLLLoss, or return raw logits to CrossEntropyLoss",
            where=_where(ctx, source))
    if source is not None and source.op == "log_softmax":
        return None
    lse = torch.logsumexp(call.input.double(), dim=1)
    if float(lse.abs().max()) <= 1e-3:
        return None
    return Finding(
        "learning.output_vs_loss", Status.FAILED,
        f"NLLLoss is fed raw logits, not log-probabilities (each row's logsumexp should be 0; "
        f"here up to {float(lse.abs().max()):.3g}): the loss falls below 0 without bound as "
        "the scores grow; apply log_softmax first (nn.LogSoftmax(dim=1)) or use "
        "CrossEntropyLoss on the raw logits",
        where=ctx.where_model())


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
