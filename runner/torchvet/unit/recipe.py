"""The rest of a user's training step: clipping, accumulation, a schedule, mixed precision.

A script that trains a word-language model at SGD lr 20 does so *because* it clips the
gradient norm at 0.25; judged without the clip, that rate diverges. The spec declares
these pieces (:class:`TrainingRecipe`, from the spec keys ``clip_grad_norm``,
``clip_grad_value``, ``accumulate``, ``scheduler`` and ``amp``, or the unit's
``[tool.torchvet.models.<name>]`` table), and :class:`UserStep` takes one optimizer step
the way the script does. Every run that trains — the training run, the one-batch runs,
the learning runs — steps through it, so every training and learning check judges the
step the user takes.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

AMP_DTYPES = {"bf16": torch.bfloat16, "bfloat16": torch.bfloat16,
              "fp16": torch.float16, "float16": torch.float16}
RECIPE_KEYS = ("clip_grad_norm", "clip_grad_value", "accumulate", "scheduler", "amp")


class RecipeError(ValueError):
    """A recipe key holds a value torchvet cannot use; the message says what to give."""


@dataclass(frozen=True)
class TrainingRecipe:
    clip_grad_norm: float | None = None
    clip_grad_value: float | None = None
    accumulate: int = 1  # micro-batches (forward + backward) per optimizer step
    scheduler: Callable[..., Any] | None = None  # callable(optimizer) -> LR scheduler
    amp: torch.dtype | None = None  # the autocast dtype of the forward and loss

    def describe(self) -> str:
        """What the step adds to the optimizer ('' for a plain step)."""
        parts = []
        if self.clip_grad_norm is not None:
            parts.append(f"gradient norm clipped at {self.clip_grad_norm:g}")
        if self.clip_grad_value is not None:
            parts.append(f"gradients clipped at ±{self.clip_grad_value:g}")
        if self.accumulate > 1:
            parts.append(f"{self.accumulate} micro-batches per step")
        if self.scheduler is not None:
            parts.append("your scheduler")
        if self.amp is not None:
            parts.append(f"autocast {str(self.amp).removeprefix('torch.')}")
        return ", ".join(parts)


def parse_recipe(raw: Mapping[str, Any], config: Any) -> TrainingRecipe:
    """The recipe from the spec's keys, else the unit's config table."""
    def pick(key: str) -> Any:
        value = raw.get(key)
        return getattr(config, key, None) if value is None else value

    scheduler = raw.get("scheduler")
    if scheduler is not None and not callable(scheduler):
        raise RecipeError("scheduler must be a callable(optimizer) returning an LR scheduler, "
                          "e.g. lambda opt: torch.optim.lr_scheduler.LambdaLR(opt, warmup)")
    amp = pick("amp")
    if amp is True:
        amp = torch.bfloat16
    elif amp is False:
        amp = None
    if amp is not None and not isinstance(amp, torch.dtype):
        name = str(amp).removeprefix("torch.")
        if name not in AMP_DTYPES:
            raise RecipeError(f"amp={amp!r}: use 'bf16' or 'fp16' (True means 'bf16')")
        amp = AMP_DTYPES[name]
    accumulate = pick("accumulate")
    return TrainingRecipe(
        clip_grad_norm=_positive("clip_grad_norm", pick("clip_grad_norm")),
        clip_grad_value=_positive("clip_grad_value", pick("clip_grad_value")),
        accumulate=int(_positive("accumulate", accumulate) or 1),
        scheduler=scheduler,
        amp=amp,
    )


def _positive(key: str, value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        raise RecipeError(f"{key}={value!r}: give a positive number")
    return float(value)


class UserStep:
    """One optimizer step as the user's script takes it: ``accumulate`` forward+backward
    passes (each loss divided by ``accumulate``) under autocast when declared, then the
    gradients unscaled and clipped, the optimizer stepped and the schedule advanced."""

    def __init__(self, recipe: TrainingRecipe, model: nn.Module, optimizer: Any,
                 declared: bool = True) -> None:
        """``declared``: ``optimizer`` is the spec's (the schedule is built for it, not
        for torchvet's own Adam)."""
        self.recipe, self.model, self.optimizer = recipe, model, optimizer
        schedule = recipe.scheduler if declared else None
        self.scheduler = schedule(optimizer) if schedule is not None else None
        device = next((p.device.type for p in model.parameters()), "cpu")
        self.device_type = device
        self.scaler = (torch.amp.GradScaler(device) if recipe.amp is torch.float16
                       and device == "cuda" else None)

    @property
    def passes(self) -> int:
        return self.recipe.accumulate

    @contextlib.contextmanager
    def autocast(self) -> Iterator[None]:
        if self.recipe.amp is None:
            yield
            return
        with torch.autocast(self.device_type, dtype=self.recipe.amp):
            yield

    def backward(self, loss: torch.Tensor) -> None:
        scaled = loss / self.recipe.accumulate if self.recipe.accumulate > 1 else loss
        (self.scaler.scale(scaled) if self.scaler is not None else scaled).backward()

    def clip(self) -> None:
        """Unscale (GradScaler) and clip the gradients, as the script does before step."""
        if self.scaler is not None:
            self.scaler.unscale_(self.optimizer)
        params = [p for p in self.model.parameters() if p.grad is not None]
        if self.recipe.clip_grad_value is not None:
            nn.utils.clip_grad_value_(params, self.recipe.clip_grad_value)
        if self.recipe.clip_grad_norm is not None:
            nn.utils.clip_grad_norm_(params, self.recipe.clip_grad_norm)

    def step(self) -> None:
        """The optimizer's step (through the scaler) and the schedule's."""
        if self.scaler is not None:
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            self.optimizer.step()
        if self.scheduler is not None:
            self.scheduler.step()

    def full(self, compute: Callable[[], torch.Tensor]) -> list[torch.Tensor]:
        """The whole step on ``compute()``'s loss; returns the micro-batches' losses."""
        self.optimizer.zero_grad(set_to_none=True)
        losses = []
        for _ in range(self.passes):
            with self.autocast():
                loss = compute()
            losses.append(loss)
            self.backward(loss)
        self.clip()
        self.step()
        return losses
