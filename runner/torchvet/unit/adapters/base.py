"""What an ecosystem adapter contributes to a model's spec, and how it is merged.

An adapter reads what a model of a known library already declares about itself (its
example inputs, its own loss, its optimizer) so a bare module needs no spec. It never
overrides what the user declared: :meth:`Adaptation.apply` fills only the gaps, and
records where each piece came from so verdict messages can say it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from torch import nn

from ..inputs import InputSource

if TYPE_CHECKING:  # spec.py calls the adapters; the type is all this module needs
    from ..spec import ModelSpec


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

    def apply(self, spec: ModelSpec) -> None:
        """Fill what the spec leaves open; the user's declarations always win."""
        if spec.step is None and spec.loss is None:
            spec.step, spec.loss = self.step, self.loss
            if "loss" in self.sources:
                spec.sources["loss"] = self.sources["loss"]
        if spec.optimizer is None and self.optimizer is not None:
            spec.optimizer = self.optimizer
            spec.sources["optimizer"] = self.sources.get("optimizer", "")
        if spec.num_classes is None and self.num_classes:
            spec.num_classes = self.num_classes


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
