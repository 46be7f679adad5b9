"""The spec's ``optimizer`` built over the model torchvet trains, however the user wrote it.

Users write optimizers three ways: ``lambda params: SGD(params, lr=0.1)``; ``lambda model:
model.configure_optimizers(...)``; or, in the minGPT/nanoGPT idiom, a closure over the
factory's own instance (``lambda params: model.configure_optimizers(weight_decay=0.1,
...)``) whose parameter groups hold *that* instance's parameters, not the copy torchvet
trains. :func:`build_optimizer` calls the callable with the parameters (with the model
where the callable treats its argument as one), then rebinds, by parameter name, every
parameter of the factory's instance it holds to its counterpart in the trained model —
per-group hyperparameters and options untouched. An optimizer that still holds none of the
trained parameters raises :class:`OptimizerUsage`, naming the fix; so do parameter groups
that overlap.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from torch import nn


class OptimizerUsage(Exception):
    """The declared optimizer cannot train the model as declared; the message says why."""


def build_optimizer(declared: Callable[..., Any], model: nn.Module,
                    pristine: nn.Module) -> Any:
    """``declared``'s optimizer over ``model`` (a copy of ``pristine``, or ``pristine``)."""
    optimizer = _call(declared, model)
    groups = getattr(optimizer, "param_groups", None)
    if not isinstance(groups, list) or not all(isinstance(g, dict) and "params" in g
                                               for g in groups):
        raise OptimizerUsage(f"the optimizer callable returned {type(optimizer).__name__}, "
                             "not an optimizer with param_groups")
    if model is not pristine:
        _rebind(optimizer, model, pristine)
    _check_groups(groups, model)
    return optimizer


def _call(declared: Callable[..., Any], model: nn.Module) -> Any:
    try:
        return declared(model.parameters())
    except (AttributeError, TypeError) as first:
        try:  # ``lambda model: model.configure_optimizers(...)``
            return declared(model)
        except Exception:
            raise first from None


def _rebind(optimizer: Any, model: nn.Module, pristine: nn.Module) -> None:
    theirs = {id(p): name for name, p in pristine.named_parameters(remove_duplicate=False)}
    ours = dict(model.named_parameters(remove_duplicate=False))
    if not any(id(p) in theirs for g in optimizer.param_groups for p in g["params"]):
        return
    for group in optimizer.param_groups:
        group["params"] = [ours.get(theirs.get(id(p), ""), p) for p in group["params"]]
    state = getattr(optimizer, "state", None)
    if isinstance(state, dict):
        state.clear()  # built, not yet stepped: nothing of value to carry over


def _check_groups(groups: list[dict[str, Any]], model: nn.Module) -> None:
    names = {id(p): n for n, p in model.named_parameters(remove_duplicate=False)}
    seen: dict[int, int] = {}
    for index, group in enumerate(groups):
        for p in group["params"]:
            earlier = seen.setdefault(id(p), index)
            if earlier != index:
                raise OptimizerUsage(
                    f"{names.get(id(p), 'a parameter')} is in parameter groups {earlier} and "
                    f"{index}: each parameter belongs to one group (build the groups from "
                    "disjoint sets of names)")
    if names and not any(id(p) in names for g in groups for p in g["params"]):
        raise OptimizerUsage(
            "the optimizer holds none of the model's parameters: build it from the "
            "parameters (or the model) the optimizer callable is given, e.g. "
            "optimizer=lambda params: torch.optim.AdamW(params, lr=3e-4)")
