"""How verdicts write exceptions, dtypes, shapes and indices.

One home for the phrasing every message shares, so that two checks (or a check and the
runtime that reports its exception) never describe the same thing two ways. Plain string
work: it imports nothing (not even torch).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message ('' when it has none)."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else ""


def one_line(exc: BaseException) -> str:
    """``ValueError: the first line of its message`` (the type alone when it has none)."""
    first = first_line(exc)
    return f"{type(exc).__name__}: {first}" if first else type(exc).__name__


def dtype_name(dtype: Any) -> str:
    """``float32`` for ``torch.float32``: a dtype as users write it in a spec."""
    return str(dtype).replace("torch.", "")


def shape_str(shape: Iterable[Any]) -> str:
    """``(2, 3)``, ``(4,)``, ``()``: a shape as Python writes a tuple."""
    parts = [str(s) for s in shape]
    return "(" + ", ".join(parts) + ("," if len(parts) == 1 else "") + ")"


def unravel(flat: int, shape: Sequence[int]) -> list[int]:
    """The position of element ``flat`` of a row-major tensor of ``shape`` (what
    ``torch.unravel_index`` gives from torch 2.2, for every supported torch)."""
    position = []
    for size in reversed(shape):
        flat, rest = divmod(flat, size) if size else (flat, 0)
        position.append(rest)
    return position[::-1]


def index_str(index: Iterable[Any]) -> str:
    """``[0, 3]``: the position of one element of a tensor."""
    return "[" + ", ".join(str(int(i)) for i in index) + "]"

