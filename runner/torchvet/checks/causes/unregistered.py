"""Model state ``nn.Module`` does not know about: layers in a plain list, a tensor kept as
a plain attribute, parameters in a dict.

What it holds is not in ``state_dict``, not moved by ``.to()`` and not seen by
optimizers; state.roundtrip names it as the reason a reloaded model differs, and the
meta-device forward of portability.device as the tensor left behind on the host.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

# Attributes every nn.Module has; everything else in a module's __dict__ is user state.
MODULE_INTERNALS = frozenset(vars(nn.Module()))
_CONTAINERS = (list, tuple, dict, set, frozenset)
_SCAN_DEPTH = 3


@dataclass
class Unregistered:
    """A module attribute holding modules/parameters/tensors that ``nn.Module`` does not
    know about: not in ``state_dict``, not moved by ``.to()``, not seen by optimizers."""

    module_path: str  # "" for the root, "encoder.blocks.0" for a submodule
    attr: str
    kind: str  # "tensor" | "list" | "tuple" | "dict" | "set"
    modules: int = 0
    parameters: int = 0
    tensors: list[tuple[str, torch.Tensor]] = field(default_factory=list)  # (name, value)
    module_objects: list[tuple[str, nn.Module]] = field(default_factory=list)

    @property
    def dotted(self) -> str:
        return f"{self.module_path}.{self.attr}" if self.module_path else self.attr

    @property
    def name(self) -> str:
        return f"self.{self.dotted}"

    @property
    def holds_weights(self) -> bool:
        return self.modules > 0 or self.parameters > 0

    def describe(self) -> str:
        if self.kind == "tensor":
            value = self.tensors[0][1]
            what = "parameter" if isinstance(value, nn.Parameter) else "tensor"
            return f"{self.name} is a plain {what} attribute"
        parts = []
        plain = len(self.tensors) - self.parameters
        for count, noun in ((self.modules, "module"), (self.parameters, "parameter"),
                            (plain, "tensor")):
            if count:
                parts.append(f"{count} {noun}{'s' if count != 1 else ''}")
        return f"{self.name} is a plain {self.kind} of {' and '.join(parts)}"

    def fix(self) -> str:
        if self.kind == "tensor":
            value = self.tensors[0][1]
            if isinstance(value, nn.Parameter) or value.requires_grad:
                return f"assign it as nn.Parameter (self.{self.attr} = nn.Parameter(...))"
            return f"use self.register_buffer('{self.attr}', ...)"
        mapping = self.kind == "dict"
        if self.modules:
            return "use nn.ModuleDict" if mapping else "use nn.ModuleList"
        if self.parameters:
            return "use nn.ParameterDict" if mapping else "use nn.ParameterList"
        return "register each tensor with self.register_buffer(...) (or stack them into one)"


def _walk(value: Any, name: str, depth: int) -> Iterator[tuple[str, Any]]:
    """(name, object) of every module/tensor inside nested plain containers."""
    if isinstance(value, (nn.Module, torch.Tensor)):
        yield name, value
        return
    if depth <= 0:
        return
    if isinstance(value, dict):
        for key, item in list(value.items()):
            yield from _walk(item, f"{name}[{key!r}]", depth - 1)
    elif isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            yield from _walk(item, f"{name}[{i}]", depth - 1)
    elif isinstance(value, (set, frozenset)):
        for item in value:
            yield from _walk(item, f"{name}[?]", depth - 1)


def user_modules(model: nn.Module) -> Iterator[tuple[str, nn.Module]]:
    """Submodules whose class is not torch's own (their internals are torch's business)."""
    for path, module in model.named_modules():
        if not type(module).__module__.startswith("torch."):
            yield path, module


def find_unregistered(model: nn.Module) -> list[Unregistered]:
    """Attributes holding modules, parameters or tensors that are not registered."""
    registered_modules = {id(m) for m in model.modules()}
    registered_tensors = {id(t) for t in model.parameters()} | {id(b) for b in model.buffers()}
    found: list[Unregistered] = []
    for path, module in user_modules(model):
        for attr, value in list(vars(module).items()):
            if attr in MODULE_INTERNALS:
                continue
            if isinstance(value, torch.Tensor):
                if id(value) not in registered_tensors:
                    found.append(Unregistered(
                        path, attr, "tensor",
                        parameters=int(isinstance(value, nn.Parameter)),
                        tensors=[(f"self.{attr}", value)],
                    ))
                continue
            if not isinstance(value, _CONTAINERS) or isinstance(value, (str, bytes)):
                continue
            item = Unregistered(path, attr, type(value).__name__
                                if type(value) in _CONTAINERS else "tuple")
            for name, obj in _walk(value, f"self.{attr}", _SCAN_DEPTH):
                if isinstance(obj, nn.Module):
                    if id(obj) not in registered_modules:
                        item.modules += 1
                        item.module_objects.append((name, obj))
                elif id(obj) not in registered_tensors:
                    item.tensors.append((name, obj))
                    item.parameters += int(isinstance(obj, nn.Parameter))
            if item.modules or item.tensors:
                found.append(item)
    # weights first: a list of layers explains more than a stray constant
    return sorted(found, key=lambda u: (not u.holds_weights, u.kind == "tensor"))
