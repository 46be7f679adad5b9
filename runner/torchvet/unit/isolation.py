"""Keeping checks independent of each other: the pristine model stays as the factory
built it, and copies of it are faithful.

Checks run eval passes on the pristine model (the unit's one live instance) and train
copies of it. An eval pass may still change state: quantization observers, counters,
caches, a data-dependent init flag. :class:`StateGuard` records the buffers (usually
small) and the parameters' identity, ``requires_grad`` and ``.grad`` when the unit is
built and puts them back before every check and every shared computation, so a verdict
does not depend on which checks ran before. Parameter values are not copied (that
would double the model's memory): no check may run a training step on the pristine
model; those run on :func:`copy_model`'s copies.

``copy.deepcopy`` is not always a faithful copy: a deep-copied TorchScript module gets
parameters that are no longer leaves (their gradients flow back to the original), and a
function held by the model over its own submodules would still call the original's
(:mod:`.closures` copies those too, and names any reference to the original a copy still
keeps). Such models are copied as a fresh factory instance loaded with the pristine state;
where that is not possible either, :class:`UnfaithfulCopy` names the reference.
"""

from __future__ import annotations

import copy
import types
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from .closures import deep_copy, foreign_reference


@dataclass
class _Buffer:
    owner: nn.Module
    name: str
    path: str
    tensor: torch.Tensor
    saved: torch.Tensor


@dataclass
class _Parameter:
    owner: nn.Module
    name: str
    path: str
    tensor: torch.Tensor
    requires_grad: bool
    grad: torch.Tensor | None


class StateGuard:
    """The pristine model's buffers and parameter flags, restorable in place."""

    def __init__(self, model: nn.Module) -> None:
        self.buffers: list[_Buffer] = []
        self.parameters: list[_Parameter] = []
        with torch.no_grad():
            for prefix, module in model.named_modules():
                for name, buf in list(module._buffers.items()):
                    if isinstance(buf, torch.Tensor):
                        self.buffers.append(_Buffer(module, name, _join(prefix, name), buf,
                                                    buf.detach().clone()))
                for name, param in list(module._parameters.items()):
                    if isinstance(param, torch.Tensor):
                        self.parameters.append(_Parameter(
                            module, name, _join(prefix, name), param, param.requires_grad,
                            param.grad))

    def restore(self) -> list[str]:
        """Put back every recorded buffer value, tensor and parameter flag a pass
        changed; returns what it restored (for tests and debugging)."""
        restored: list[str] = []
        with torch.no_grad():
            for buf in self.buffers:
                if getattr(buf.owner, buf.name, None) is not buf.tensor:
                    setattr(buf.owner, buf.name, buf.tensor)
                    restored.append(buf.path)
                if _same(buf.tensor, buf.saved):
                    continue
                if buf.tensor.shape != buf.saved.shape:
                    buf.tensor.resize_(buf.saved.shape)
                buf.tensor.copy_(buf.saved)
                restored.append(buf.path)
        for param in self.parameters:
            if getattr(param.owner, param.name, None) is not param.tensor:
                setattr(param.owner, param.name, param.tensor)
                restored.append(param.path)
            if param.tensor.requires_grad != param.requires_grad:
                param.tensor.requires_grad_(param.requires_grad)
                restored.append(param.path)
            if param.tensor.grad is not param.grad:
                param.tensor.grad = param.grad
                restored.append(param.path)
        return restored


def _join(prefix: str, name: str) -> str:
    return f"{prefix}.{name}" if prefix else name


def _same(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Bitwise equal, NaN equal to NaN."""
    if a.shape != b.shape or a.dtype != b.dtype:
        return False
    if torch.equal(a, b):
        return True
    return a.is_floating_point() and bool(((a == b) | (a.isnan() & b.isnan())).all())


# --------------------------------------------------------------------------- copies


def holds_script_module(model: nn.Module) -> bool:
    return any(isinstance(m, torch.jit.ScriptModule) for m in model.modules())


def faithful(original: nn.Module, copied: nn.Module) -> bool:
    """The copy's parameters are leaves of the same kinds, tied where the original's are,
    and share no storage with the original."""
    ours = list(original.named_parameters(remove_duplicate=False))
    theirs = list(copied.named_parameters(remove_duplicate=False))
    if [n for n, _ in ours] != [n for n, _ in theirs]:
        return False
    first_seen: dict[int, int] = {}
    for index, ((_, a), (_, b)) in enumerate(zip(ours, theirs, strict=True)):
        if not b.is_leaf or type(a) is not type(b) or a.requires_grad != b.requires_grad:
            return False
        if a is b:
            return False
        if first_seen.setdefault(id(a), index) != first_seen.setdefault(id(b), index):
            return False
    return True


class UnfaithfulCopy(Exception):
    """No copy of the model trains its own parameters: the message names the reference
    to the original that a copy keeps."""


def copy_model(model: nn.Module, rebuild: Callable[[], Any]) -> nn.Module:
    """An independent, faithful copy of ``model``: a deep copy where that is faithful,
    else ``rebuild()`` (a fresh factory instance seeded like the original) loaded with
    ``model``'s state; an unfaithful deep copy only when no fresh instance can be had
    (TorchScript). Raises what the deep copy raised when neither works, and
    :class:`UnfaithfulCopy` when every copy still reaches the original."""
    error: Exception | None = None
    reference: str | None = None
    if not holds_script_module(model):
        try:
            copied = deep_copy(model)
        except Exception as exc:
            error = exc
        else:
            reference = foreign_reference(model, copied)
            if reference is None and faithful(model, copied):
                return copied
            del copied  # one live copy at a time
    try:
        fresh = rebuild()
        if fresh is model:
            raise RuntimeError("the factory returns the same instance on every call")
        fresh.load_state_dict(model.state_dict())
    except Exception as exc:
        if reference is not None:
            raise UnfaithfulCopy(_unfaithful(reference, f"a fresh instance failed: {exc}")
                                 ) from None
        if error is not None:
            raise error from None
        return copy.deepcopy(model)  # not faithful, but the best there is
    again = foreign_reference(model, fresh)
    if again is not None:
        raise UnfaithfulCopy(_unfaithful(again, "a fresh factory instance reaches it too"))
    return fresh


def _unfaithful(reference: str, why: str) -> str:
    return (f"a copy of the model still uses the original: {reference}, so training the "
            f"copy would move the original's parameters ({why}); hold submodules as "
            "attributes or call them through self inside forward")


def bound_to(fn: Any, pristine: nn.Module, model: nn.Module) -> Any:
    """``fn`` (the spec's loss or step) as it applies to ``model``, a copy of
    ``pristine``: a method of the pristine model or of one of its submodules, or a loss
    module held inside it, becomes its counterpart in the copy (a multi-task loss whose
    weights live on the model)."""
    if fn is None or model is pristine:
        return fn
    method = isinstance(fn, types.MethodType)
    owner = fn.__self__ if method else fn
    if not isinstance(owner, nn.Module):
        return fn
    path = next((name for name, m in pristine.named_modules() if m is owner), None)
    if path is None:
        return fn
    try:
        counterpart = model.get_submodule(path)
    except AttributeError:
        return fn
    return types.MethodType(fn.__func__, counterpart) if method else counterpart


# --------------------------------------------------------------------------- fake-quant


def observe_in_train_mode_only(model: nn.Module) -> list[str]:
    """Fake-quant modules (``torch.ao.quantization``) whose observers are enabled keep
    observing in train mode and freeze their statistics in eval mode, as the QAT recipe
    does before evaluating (``disable_observer``) and ``convert()`` does for good: an
    observer that updates in eval makes every eval pass depend on the previous ones and
    on the batch mates. Returns the modules' names."""
    base = getattr(torch.ao.quantization, "FakeQuantizeBase", None)
    if base is None:
        return []
    names = []
    for name, module in model.named_modules():
        if isinstance(module, base) and bool(module.observer_enabled.flatten()[0]):
            module.train = types.MethodType(_train_observing, module)
            names.append(name)
    return names


def _train_observing(self: Any, mode: bool = True) -> Any:
    nn.Module.train(self, mode)
    if mode:
        self.enable_observer()
    else:
        self.disable_observer()
    return self


def holds_fake_quant(model: nn.Module) -> bool:
    base = getattr(torch.ao.quantization, "FakeQuantizeBase", None)
    return base is not None and any(isinstance(m, base) for m in model.modules())
