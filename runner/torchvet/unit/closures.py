"""Deep copies that follow closures, and the references a copy keeps to its original.

``copy.deepcopy`` treats a function as an atom: a module that keeps a ``lambda`` or a
nested function over one of its own submodules (``m = self.mlp; self.mlpf = lambda x:
m.c_proj(m.c_fc(x))``), or registers such a function as a hook on itself, gets in its
copy the very same function, which still calls the *original* submodules. Trained, that
copy sends its gradients to the original's parameters and moves none of its own.

:func:`deep_copy` copies such functions too: a function whose closure cells or defaults
hold a module, a tensor, another function or anything already copied gets a twin whose
cells hold the copies. :func:`foreign_reference` then walks a copy's attributes, hooks,
closures, bound methods and partials and names the first path that still leads to an
object of the original, so an unfaithful copy is never trained silently.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import types
from collections.abc import Iterator
from typing import Any

import torch
from torch import nn

_DISPATCH: dict[type, Any] = getattr(copy, "_deepcopy_dispatch")  # noqa: B009
_REGISTRIES = ("_parameters", "_buffers", "_modules")
_MAX_DEPTH = 6


def deep_copy(obj: Any, memo: dict[int, Any] | None = None) -> Any:
    """``copy.deepcopy(obj, memo)`` that also copies the functions holding parts of
    ``obj`` in their closures or defaults."""
    with _closures_followed():
        return copy.deepcopy(obj, memo if memo is not None else {})


@contextlib.contextmanager
def _closures_followed() -> Iterator[None]:
    previous = _DISPATCH.get(types.FunctionType)
    _DISPATCH[types.FunctionType] = _copy_function
    try:
        yield
    finally:
        if previous is None:
            _DISPATCH.pop(types.FunctionType, None)
        else:
            _DISPATCH[types.FunctionType] = previous


def _follows(value: Any, memo: dict[int, Any]) -> bool:
    return id(value) in memo or isinstance(
        value, nn.Module | torch.Tensor | types.FunctionType | types.MethodType
        | functools.partial)


def _copy_function(fn: types.FunctionType, memo: dict[int, Any]) -> Any:
    cells = fn.__closure__ or ()
    defaults = fn.__defaults__ or ()
    kwdefaults = fn.__kwdefaults__ or {}
    held = [_contents(c) for c in cells] + list(defaults) + list(kwdefaults.values())
    if not any(v is not _EMPTY and _follows(v, memo) for v in held):
        return fn
    twin = types.FunctionType(fn.__code__, fn.__globals__, fn.__name__, None,
                              tuple(types.CellType() for _ in cells))
    memo[id(fn)] = twin  # a function reaching itself (recursion) finds its twin
    for cell, new in zip(cells, twin.__closure__ or (), strict=True):
        value = _contents(cell)
        if value is not _EMPTY:
            new.cell_contents = copy.deepcopy(value, memo) if _follows(value, memo) else value
    twin.__defaults__ = tuple(copy.deepcopy(v, memo) if _follows(v, memo) else v
                              for v in defaults) or None
    twin.__kwdefaults__ = {k: copy.deepcopy(v, memo) if _follows(v, memo) else v
                           for k, v in kwdefaults.items()} or None
    twin.__qualname__, twin.__module__ = fn.__qualname__, fn.__module__
    twin.__dict__.update(fn.__dict__)
    return twin


_EMPTY = object()


def _contents(cell: Any) -> Any:
    try:
        return cell.cell_contents
    except ValueError:  # a cell not yet filled
        return _EMPTY


# --------------------------------------------------------------------------- detection


def foreign_reference(original: nn.Module, copied: nn.Module) -> str | None:
    """Where ``copied`` still reaches a module or parameter of ``original`` through a
    function, hook, bound method or container it holds: ``"h.0.mlpf (a lambda) reaches
    the original's mlp.c_fc"``; None when it reaches none."""
    own = {id(m): name for name, m in original.named_modules(remove_duplicate=False)}
    own.update({id(p): name for name, p in
                original.named_parameters(remove_duplicate=False)})
    for prefix, module in copied.named_modules():
        for attr, value in vars(module).items():
            if attr in _REGISTRIES:
                continue
            path = f"{prefix}.{attr}" if prefix else attr
            found = _reach(value, own, 0, set())
            if found is not None:
                target = found or "the whole model"
                return f"{path} ({_kind(value)}) reaches the original's {target}"
    return None


def _reach(value: Any, own: dict[int, str], depth: int, seen: set[int]) -> str | None:
    if id(value) in own:
        return own[id(value)]
    if depth > _MAX_DEPTH or id(value) in seen or isinstance(value, nn.Module | torch.Tensor):
        return None
    seen.add(id(value))
    for child in _children(value):
        found = _reach(child, own, depth + 1, seen)
        if found is not None:
            return found
    return None


def _children(value: Any) -> list[Any]:
    if isinstance(value, types.FunctionType):
        cells = [_contents(c) for c in value.__closure__ or ()]
        return [*cells, *(value.__defaults__ or ()), *(value.__kwdefaults__ or {}).values()]
    if isinstance(value, types.MethodType):
        return [value.__self__, value.__func__]
    if isinstance(value, functools.partial):
        return [value.func, *value.args, *value.keywords.values()]
    if isinstance(value, dict):
        return list(value.values())
    if isinstance(value, list | tuple | set | frozenset):
        return list(value)
    if isinstance(value, type | types.ModuleType) or not hasattr(value, "__dict__"):
        return []
    return list(vars(value).values())  # a plain object holding a submodule


def _kind(value: Any) -> str:
    if isinstance(value, types.FunctionType):
        return "a lambda" if value.__name__ == "<lambda>" else f"function {value.__name__}"
    if isinstance(value, types.MethodType):
        return f"a bound method {value.__func__.__name__}"
    if isinstance(value, functools.partial):
        return "a functools.partial"
    if isinstance(value, dict) and value and all(isinstance(k, int) for k in value):
        return "hooks"
    return type(value).__name__
