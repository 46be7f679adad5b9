"""Pickle forensics for data.workers: whether the dataset, collate_fn and worker_init_fn
pickle (as spawn-started DataLoader workers receive them), and if not, the innermost
value that does not — a lambda, a local function, an open file — with its fix."""

from __future__ import annotations

import functools
import io
import pickle
import types
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .layout import qualname


class _CountingSink(io.RawIOBase):
    """A file that only counts the bytes written to it."""

    def __init__(self) -> None:
        self.size = 0

    def writable(self) -> bool:
        return True

    def write(self, b: Any) -> int:
        n = len(memoryview(b).cast("B"))
        self.size += n
        return n


def pickled_size(obj: Any) -> int:
    sink = _CountingSink()
    pickle.Pickler(sink, protocol=pickle.HIGHEST_PROTOCOL).dump(obj)
    return sink.size


def _picklable(obj: Any) -> bool:
    try:
        pickled_size(obj)
    except Exception:
        return False
    return True


def find_unpicklable(obj: Any, path: str, depth: int = 0
                     ) -> tuple[str, Any, Any, str | None]:
    """(path, culprit, owner, attribute) of the innermost value that does not pickle."""
    children: list[tuple[str, Any, str | None]] = []
    if depth < 6:
        if isinstance(obj, Mapping):
            children = [(f"{path}[{k!r}]", v, None) for k, v in list(obj.items())[:200]]
        elif isinstance(obj, (list, tuple, set, frozenset)):
            children = [(f"{path}[{i}]", v, None) for i, v in enumerate(list(obj)[:200])]
        elif isinstance(obj, functools.partial):
            children = [(f"{path}.func", obj.func, None)]
            children += [(f"{path}.args[{i}]", v, None) for i, v in enumerate(obj.args)]
            children += [(f"{path}.keywords[{k!r}]", v, None) for k, v in obj.keywords.items()]
        elif isinstance(obj, types.MethodType):
            children = [(f"{path}.__self__", obj.__self__, None)]
        elif hasattr(obj, "__dict__") and not isinstance(obj, (type, types.FunctionType,
                                                               types.ModuleType)):
            children = [(f"{path}.{k}", v, k) for k, v in list(vars(obj).items())[:200]]
    for child_path, child, attr in children:
        if not _picklable(child):
            inner = find_unpicklable(child, child_path, depth + 1)
            if inner[2] is None and attr is not None:
                return inner[0], inner[1], obj, attr
            return inner
    return path, obj, None, None


def describe_culprit(value: Any) -> tuple[str, str]:
    """(what it is, how to fix it) for a value that does not pickle."""
    module_level = ("replace it with a module-level function, functools.partial of one, or "
                    "an instance of a module-level callable class")
    if isinstance(value, types.FunctionType):
        if value.__name__ == "<lambda>":
            return "a lambda", module_level
        if "<locals>" in value.__qualname__:
            outer = value.__qualname__.split(".<locals>")[0]
            return f"the function {value.__name__} defined inside {outer}()", module_level
        return f"the function {value.__qualname__}", module_level
    if isinstance(value, types.GeneratorType):
        return "a generator", "store the data (a list) or a factory for the generator instead"
    if isinstance(value, io.IOBase) or type(value).__name__ in ("File", "Environment",
                                                                 "Connection", "socket"):
        return (f"an open {qualname(type(value))}",
                "open it lazily in __getitem__ (or in worker_init_fn) instead of __init__, and "
                "drop it in __getstate__")
    cls = type(value)
    if "<locals>" in cls.__qualname__:
        return (f"an instance of {cls.__qualname__}, a class defined inside a function",
                "define the class at module level")
    if cls.__module__ == "__main__":
        return (f"an instance of {cls.__qualname__} from __main__",
                "move the class into an importable module")
    return (f"a {qualname(cls)}", "make it picklable (define __getstate__/__setstate__) or "
            "create it lazily in __getitem__/worker_init_fn")


@dataclass
class PickleProblem:
    what: str  # "the dataset", "the collate_fn", ...
    path: str
    culprit: Any
    owner: Any
    attr: str | None
    error: BaseException


def pickle_problem(parts: Sequence[tuple[str, str, Any]]) -> tuple[PickleProblem | None, int]:
    """The first of (what, path, obj) that does not pickle, and the total pickled size."""
    total = 0
    for what, path, obj in parts:
        try:
            total += pickled_size(obj)
        except Exception as exc:
            inner_path, culprit, owner, attr = find_unpicklable(obj, path)
            return PickleProblem(what, inner_path, culprit, owner, attr, exc), total
    return None, total
