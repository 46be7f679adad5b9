"""Lightning modules: ``training_step`` as the step — on a batch of the module's own
``train_dataloader()`` when one is cheap to get, else on the declared inputs — and
``configure_optimizers()`` as the optimizer. ``example_input_array`` stays the forward's
input (the spec reads it like any ``example_inputs``)."""

from __future__ import annotations

import inspect
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn

from ..inputs import FixedSource, select_batch
from ..pytree import leaves, map_tensors
from ..seeding import derived_seed, seed_everything
from ..text import one_line
from .base import Adaptation, base_class, derives_from, overrides

LIBRARY = "Lightning"
MODULES = ("lightning.pytorch.", "pytorch_lightning.")
# Logging without a Trainer only warns; the checks run the step outside any Trainer.
NO_TRAINER_LOG = r"You are trying to `self\.log\(\)`"


def detect(model: nn.Module) -> bool:
    return derives_from(model, MODULES, "LightningModule")


def adapt(model: nn.Module, seed: int, batch_size: int, declared_inputs: bool
          ) -> Adaptation:
    name = type(model).__name__
    base = base_class(model, "LightningModule")
    found = Adaptation(LIBRARY)
    batch, batch_note = _first_batch(model, base, seed, max(2, batch_size))
    if batch is not None and getattr(model, "example_input_array", None) is None:
        first = batch[0] if isinstance(batch, (tuple, list)) and len(batch) >= 2 else None
        if isinstance(first, torch.Tensor):
            found.inputs = FixedSource(
                first, seed, f"the first element of a {name}.train_dataloader() batch")
            found.inferred_inputs = True
    _training_step(found, model, base, batch, batch_note, declared_inputs)
    _optimizer(found, model, base)
    return found


def _first_batch(model: nn.Module, base: type | None, seed: int, size: int
                 ) -> tuple[Any, str]:
    """The first batch of ``train_dataloader()``, cut to ``size`` samples, read without
    worker processes; (None, why) where there is none to be had cheaply."""
    name = type(model).__name__
    if not overrides(model, base, "train_dataloader"):
        return None, f"{name} defines no train_dataloader()"
    seed_everything(derived_seed(seed, "lightning-batch"))
    try:
        loader = model.train_dataloader()  # type: ignore[operator]
        if isinstance(loader, torch.utils.data.DataLoader) and loader.batch_size:
            loader = torch.utils.data.DataLoader(
                loader.dataset, batch_size=loader.batch_size, collate_fn=loader.collate_fn)
        batch = next(iter(loader))
    except Exception as exc:
        return None, f"{name}.train_dataloader() raised {one_line(exc)} outside a Trainer"
    tensors = leaves(batch)
    if not tensors:
        return None, f"{name}.train_dataloader() yields batches without tensors"
    base_size = next((int(t.shape[0]) for _, t in tensors if t.dim() >= 1), size)
    return select_batch(batch, min(size, base_size), base_size), ""


def _training_step(found: Adaptation, model: nn.Module, base: type | None, batch: Any,
                   batch_note: str, declared_inputs: bool) -> None:
    name = type(model).__name__
    if not overrides(model, base, "training_step"):
        found.sources["loss"] = f"({name} defines no training_step)"
        return
    if getattr(model, "automatic_optimization", True) is False:
        found.sources["loss"] = (
            f"({name} optimizes manually: its training_step needs a Trainer; declare step=)")
        return
    if batch is None and not declared_inputs:
        found.sources["loss"] = (
            f"({batch_note}; declare inputs= or step= to run {name}.training_step)")
        return
    found.step = TrainingStep(model, batch)
    where = "a train_dataloader() batch" if batch is not None else "the declared inputs"
    found.sources["loss"] = f"from {name}.training_step on {where}"


class TrainingStep:
    """``step(model, inputs)`` calling the module's ``training_step``: on the fixed
    ``batch`` (moved to the model's device) when there is one, else on ``inputs``."""

    def __init__(self, model: nn.Module, batch: Any) -> None:
        self.batch = batch
        try:
            params = inspect.signature(model.training_step).parameters  # type: ignore[arg-type]
            self.with_index = len(params) >= 2
        except (TypeError, ValueError):
            self.with_index = True

    def __call__(self, model: nn.Module, inputs: Any) -> Any:
        batch = inputs
        if self.batch is not None:
            device = next((p.device for p in model.parameters()), torch.device("cpu"))
            batch = map_tensors(self.batch, lambda t: t.to(device))
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=NO_TRAINER_LOG)
            args = (batch, 0) if self.with_index else (batch,)
            out = model.training_step(*args)  # type: ignore[operator]
        if isinstance(out, Mapping):
            out = out.get("loss")
        if out is None:
            raise TypeError(
                f"{type(model).__name__}.training_step returned no loss (None skips the "
                "batch in Lightning): return the loss tensor or {'loss': loss}")
        return out


def _optimizer(found: Adaptation, model: nn.Module, base: type | None) -> None:
    name = type(model).__name__
    if not overrides(model, base, "configure_optimizers"):
        return
    try:
        optimizer = first_optimizer(model.configure_optimizers())  # type: ignore[operator]
    except Exception as exc:
        found.sources["optimizer"] = (
            f"the default Adam: {name}.configure_optimizers() raised {one_line(exc)} "
            "outside a Trainer")
        return
    if optimizer is None:
        return
    found.optimizer = SameOptimizer(model, optimizer)
    found.sources["optimizer"] = (
        f"{name}.configure_optimizers() ({type(optimizer).__name__})")


def first_optimizer(value: Any) -> torch.optim.Optimizer | None:
    """The optimizer of any form configure_optimizers may return: one, a list or tuple
    (the first), ``([optimizers], [schedulers])``, or a dict with ``"optimizer"``."""
    if isinstance(value, torch.optim.Optimizer):
        return value
    if isinstance(value, Mapping):
        return first_optimizer(value.get("optimizer"))
    if isinstance(value, Sequence) and not isinstance(value, str) and value:
        return first_optimizer(value[0])
    return None


class SameOptimizer:
    """``optimizer(params)``: the optimizer ``configure_optimizers()`` built, rebuilt with
    the same class, groups and hyper-parameters over a copy's parameters (the copy's
    parameters come in the same order as the module's)."""

    def __init__(self, model: nn.Module, optimizer: torch.optim.Optimizer) -> None:
        self.template = optimizer
        self.index = {id(p): i for i, p in enumerate(model.parameters())}

    def __call__(self, params: Any) -> torch.optim.Optimizer:
        params = list(params)
        groups = []
        for group in self.template.param_groups:
            mapped = [params[self.index[id(p)]] for p in group["params"]
                      if id(p) in self.index and self.index[id(p)] < len(params)]
            groups.append({**{k: v for k, v in group.items() if k != "params"},
                           "params": mapped})
        cls: Any = type(self.template)
        try:
            return cls(groups, **self.template.defaults)
        except TypeError:  # a class whose defaults are not all constructor arguments
            return cls(groups)
