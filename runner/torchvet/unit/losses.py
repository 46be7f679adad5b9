"""What the runtime accepts as a training loss, and the loss it trains without one.

:class:`LossProblem` is raised wherever a training step produced something that cannot
be trained on (the shared training run, the one-batch runs, a surrogate over an output
with no floating tensor); :func:`surrogate_loss` is the loss of a model declared without
one: a fixed random projection of every floating output leaf, never ``out.sum()`` (a
softmax head makes its gradient exactly zero).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch

from .pytree import floating_leaves
from .seeding import derived_seed


@dataclass
class LossProblem(Exception):
    """The training step produced something that is not a usable loss."""

    message: str

    def __str__(self) -> str:
        return self.message


def surrogate_loss(output: Any, seed: int) -> torch.Tensor:
    """A fixed random projection of every floating output leaf, drawn from ``seed``."""
    total: torch.Tensor | None = None
    for path, leaf in floating_leaves(output):
        if leaf.is_complex():
            leaf = torch.view_as_real(leaf)
        gen = torch.Generator().manual_seed(derived_seed(seed, "proj", path))
        weight = torch.randn(tuple(leaf.shape), generator=gen).to(leaf.device, leaf.dtype)
        term = (leaf * weight).sum() / math.sqrt(max(leaf.numel(), 1))
        total = term if total is None else total + term.to(total.dtype)
    if total is None:
        raise LossProblem(
            "the output has no floating tensor to train against; declare a loss or a "
            "step in the spec"
        )
    return total


def validate_loss(loss: Any, surrogate: bool) -> None:
    """Raise :class:`LossProblem` unless ``loss`` is a finite 0-d tensor needing grad."""
    source = "the surrogate loss" if surrogate else "the loss"
    if not isinstance(loss, torch.Tensor):
        raise LossProblem(
            f"{source} is a {type(loss).__name__}, not a tensor: return the loss tensor "
            "itself (not loss.item())"
        )
    if loss.dim() != 0:
        raise LossProblem(
            f"{source} has shape {tuple(loss.shape)}, not a scalar: reduce it "
            "(reduction='mean' or .mean()) before returning it"
        )
    if not loss.requires_grad:
        cause = (
            "the model's outputs do not require grad" if surrogate else "it does not require grad"
        )
        raise LossProblem(
            f"{source} cannot be backpropagated: {cause}; the forward runs under "
            "torch.no_grad(), detaches its result (.detach(), .item(), .numpy()), or no "
            "parameter requires grad"
        )
    if not bool(torch.isfinite(loss)):
        raise LossProblem(
            f"{source} is {float(loss.detach())} at init: look for log/sqrt/division of values "
            "that can be 0 or negative, or an overflow"
        )
