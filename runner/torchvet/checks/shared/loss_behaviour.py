"""What the declared loss does with the outputs the model's last activation can produce.

A loss is judged by its behaviour, not its name, so a hand-written loss (a Keras-style
categorical cross-entropy that renormalises the output, a mean absolute error, a BCE
written out) is judged like a torch one. On the real targets of the probe batch, the
loss is evaluated at outputs the output activation reaches: its closed bounds (a ReLU's
all-zero row), the one-hot of the right class and of a wrong one. Read by
learning.output_vs_loss.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from ...unit.context import CheckContext
from .probe import ActivationCall, init_probe

# closed bounds an activation reaches exactly (open bounds, a sigmoid's 0, are never hit)
CLOSED = {"relu": (0.0, None), "relu_": (0.0, None), "relu6": (0.0, 6.0),
          "hardsigmoid": (0.0, 1.0), "hardtanh": (-1.0, 1.0)}
# where each activation's outputs lie, open bounds included
RANGES = {"sigmoid": (0.0, 1.0), "softmax": (0.0, 1.0), "tanh": (-1.0, 1.0),
          "relu": (0.0, 1.0), "relu6": (0.0, 6.0), "hardsigmoid": (0.0, 1.0),
          "hardtanh": (-1.0, 1.0)}


@dataclass
class LossBehaviour:
    """The loss on outputs the activation reaches, for the probe batch's targets."""

    activation: ActivationCall
    shape: tuple[int, ...]
    nonfinite: str = ""  # the reachable output on which the loss is NaN or infinite
    right: float | None = None  # loss with the right class's one-hot (classification)
    wrong: float | None = None  # loss with a wrong class's one-hot
    renormalises: bool = False  # the loss is unchanged when an output row is scaled


def output_activation(ctx: CheckContext) -> ActivationCall | None:
    """The last activation inside the model whose result is the model's output."""
    found = [a for a in init_probe(ctx).activations if a.is_output and a.in_model]
    return found[-1] if found else None


def loss_behaviour(ctx: CheckContext) -> LossBehaviour | None:
    """Memoised; None without a declared loss, a tensor target the size of the output's
    batch, or an output activation."""
    return ctx.memo("loss-behaviour", lambda: _behaviour(ctx))


def _behaviour(ctx: CheckContext) -> LossBehaviour | None:
    spec = ctx.spec
    activation = output_activation(ctx)
    if spec is None or spec.loss is None or spec.step is not None or activation is None:
        return None
    target = ctx.target(init_probe(ctx).batch)
    shape = activation.shape
    if (not isinstance(target, torch.Tensor) or len(shape) != 2 or shape[1] < 2
            or target.shape[0] != shape[0]):
        return None
    found = LossBehaviour(activation, shape)
    bounds = CLOSED.get(activation.op)
    if bounds is not None:
        for bound in (b for b in bounds if b is not None):
            value = _loss(ctx, torch.full(shape, bound), target)
            if value is not None and not math.isfinite(value):
                found.nonfinite = f"an output row of all {bound:g}s"
                break
    labels = _labels(target, shape[1])
    low, high = RANGES.get(activation.op.rstrip("_"), (None, None))
    if labels is not None and low is not None and high is not None:
        right = torch.nn.functional.one_hot(labels, shape[1]).float()
        wrong = torch.nn.functional.one_hot((labels + 1) % shape[1], shape[1]).float()
        span = high - low
        found.right = _loss(ctx, low + span * (0.01 + 0.98 * right), target)
        found.wrong = _loss(ctx, low + span * (0.01 + 0.98 * wrong), target)
        half = _loss(ctx, (low + span * (0.01 + 0.98 * right)) * 0.5, target)
        found.renormalises = (found.right is not None and half is not None
                              and math.isfinite(found.right) and low >= 0
                              and abs(half - found.right) <= 1e-4 * max(abs(found.right), 1e-6))
    return found


def _labels(target: torch.Tensor, classes: int) -> torch.Tensor | None:
    """Class ids of an integer target or a one-hot one; None for anything else."""
    if not target.is_floating_point() and target.dim() == 1:
        return target.long() if int(target.min()) >= 0 and int(target.max()) < classes \
            else None
    if target.dim() == 2 and target.shape[1] == classes:
        ones = (target == 1).sum(1) == 1
        zeros = (target == 0).sum(1) == classes - 1
        if bool((ones & zeros).all()):
            return target.argmax(1)
    return None


def _loss(ctx: CheckContext, output: torch.Tensor, target: torch.Tensor) -> float | None:
    """The declared loss of ``output``; None when it raises (the user's loss is judged
    by training.loss, not here)."""
    with torch.no_grad():
        try:
            value = ctx.loss_of(output.to(ctx.device), target)
        except Exception:
            return None
    if not isinstance(value, torch.Tensor) or value.numel() != 1:
        return None
    return float(value)
