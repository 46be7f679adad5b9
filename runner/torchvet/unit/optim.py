"""A minimal Adam for the checks' default optimizer.

``torch.optim`` optimizers import ``torch._dynamo`` on construction (about 2 s per
process on a CI runner); the checks only need plain Adam, so they use this one and a
worker pays that import only when a spec declares its own ``optimizer``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import torch


class Adam:
    """Adam (Kingma & Ba) with bias correction; the subset of the Optimizer API the
    checks use: ``param_groups``, ``zero_grad`` and ``step``."""

    def __init__(self, params: Iterable[torch.Tensor], lr: float = 1e-3,
                 betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8) -> None:
        self.param_groups: list[dict[str, Any]] = [
            {"params": [p for p in params if p.requires_grad], "lr": lr}
        ]
        self.betas, self.eps = betas, eps
        self.state: dict[torch.Tensor, dict[str, Any]] = {}

    def zero_grad(self, set_to_none: bool = True) -> None:
        for group in self.param_groups:
            for p in group["params"]:
                if set_to_none:
                    p.grad = None
                elif p.grad is not None:
                    p.grad.zero_()

    @torch.no_grad()
    def step(self) -> None:
        beta1, beta2 = self.betas
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                grad = p.grad.to_dense() if p.grad.is_sparse else p.grad
                state = self.state.setdefault(p, {"step": 0, "m": torch.zeros_like(p),
                                                  "v": torch.zeros_like(p)})
                state["step"] += 1
                state["m"].mul_(beta1).add_(grad, alpha=1 - beta1)
                state["v"].mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
                correction1 = 1 - beta1 ** state["step"]
                correction2 = 1 - beta2 ** state["step"]
                denom = (state["v"].sqrt() / math.sqrt(correction2)).add_(self.eps)
                p.addcdiv_(state["m"], denom, value=-group["lr"] / correction1)


class StatelessAdam(Adam):
    """Adam's first step at every step: ``p -= lr * g / (|g| + eps)``.

    Adam's moments hold twice the trainable parameters' memory; the short training run
    of a large model takes this step instead (its first step is exactly Adam's, and like
    Adam it moves every parameter with a non-zero gradient by about ``lr``)."""

    @torch.no_grad()
    def step(self) -> None:
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                grad = p.grad.to_dense() if p.grad.is_sparse else p.grad
                p.addcdiv_(grad, grad.abs().add_(self.eps), value=-group["lr"])
