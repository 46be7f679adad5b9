"""What an ecosystem adapter is and what it contributes to a model's spec.

An adapter reads what a model of a known library already declares about itself (its
example inputs, its own loss, its optimizer) so a bare module needs no spec. Every
adapter is one module satisfying :class:`Adapter` (pre-commit's ``lang_base.Language``
is the model); its :class:`Adaptation` is plain data, which :mod:`torchvet.unit.spec`
merges into the spec without overriding what the user declared, recording where each
piece came from so verdict messages can say it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from torch import nn

from ..inputs import InputSource


@dataclass
class Adaptation:
    """An adapter's findings for one model; every field is optional."""

    library: str
    inputs: InputSource | None = None
    inferred_inputs: bool = False  # a guess (a misfit skips the unit, with a hint)
    step: Callable[..., Any] | None = None
    loss: Callable[..., Any] | None = None
    optimizer: Callable[..., Any] | None = None
    num_classes: int | None = None
    # "loss" / "optimizer" -> where it came from (inputs carry their own description)
    sources: dict[str, str] = field(default_factory=dict)


class Adapter(Protocol):
    """One ecosystem: how to recognise its models and read what they declare."""

    LIBRARY: str  # the ecosystem's name in messages: "Hugging Face"

    def detect(self, model: nn.Module) -> bool:
        """Whether ``model`` belongs to this ecosystem (never by importing it)."""

    def adapt(self, model: nn.Module, seed: int, batch_size: int, declared_inputs: bool
              ) -> Adaptation:
        """What ``model`` declares about itself; ``declared_inputs``: the user declared
        inputs (an adapter then leaves them alone)."""


def class_modules(model: nn.Module) -> list[tuple[str, str]]:
    """(module, name) of every class in the model's MRO: libraries are recognised by
    their classes' modules, never by importing them."""
    return [(cls.__module__, cls.__name__) for cls in type(model).__mro__]


def derives_from(model: nn.Module, prefixes: tuple[str, ...], name: str | None = None
                 ) -> bool:
    """Whether a class of the model's MRO lives in one of ``prefixes`` (and is ``name``)."""
    return any(
        module.startswith(prefixes) and (name is None or cls_name == name)
        for module, cls_name in class_modules(model)
    )


def base_class(model: nn.Module, name: str) -> type | None:
    return next((cls for cls in type(model).__mro__ if cls.__name__ == name), None)


def overrides(model: nn.Module, base: type | None, method: str) -> bool:
    """Whether the model's class defines ``method`` itself rather than inheriting the
    library's placeholder."""
    if base is None:
        return False
    return getattr(type(model), method, None) is not getattr(base, method, None)
