"""Zero-config models from the ecosystems users already live in: Lightning, Hugging Face
``transformers`` and timm. Each is recognised by its classes' modules or by duck typing,
never by importing the library, and contributes what the model declares about itself
(inputs, its own loss, its optimizer) where the user's spec is silent.

:data:`ADAPTERS` is the registry: one module per ecosystem, each an
:class:`~torchvet.unit.adapters.base.Adapter`, asked in order (a LightningModule wrapping
a timm or HF model is Lightning: its training_step is the step).
"""

from __future__ import annotations

from torch import nn

from . import hf, lightning, timm
from .base import Adaptation, Adapter

__all__ = ["ADAPTERS", "Adaptation", "Adapter", "adapt", "adapter_of", "library_of"]

ADAPTERS: dict[str, Adapter] = {
    lightning.LIBRARY: lightning,
    hf.LIBRARY: hf,
    timm.LIBRARY: timm,
}


def adapter_of(model: nn.Module) -> Adapter | None:
    """The first adapter that recognises ``model`` (None for a plain module)."""
    return next((a for a in ADAPTERS.values() if a.detect(model)), None)


def library_of(model: nn.Module) -> str | None:
    """The ecosystem a model belongs to, or None for a plain module."""
    found = adapter_of(model)
    return found.LIBRARY if found is not None else None


def adapt(model: nn.Module, seed: int, batch_size: int, declared_inputs: bool
          ) -> Adaptation | None:
    """What the model's library tells about it, or None for a plain ``nn.Module``."""
    found = adapter_of(model)
    return found.adapt(model, seed, batch_size, declared_inputs) if found is not None else None
