"""Zero-config models from the ecosystems users already live in: Lightning, Hugging Face
``transformers`` and timm. Each is recognised by its classes' modules or by duck typing,
never by importing the library, and contributes what the model declares about itself
(inputs, its own loss, its optimizer) where the user's spec is silent."""

from __future__ import annotations

from torch import nn

from . import hf, lightning, timm
from .base import Adaptation

__all__ = ["Adaptation", "adapt", "library_of"]


def library_of(model: nn.Module) -> str | None:
    """The ecosystem a model belongs to (a LightningModule wrapping a timm or HF model is
    Lightning: its training_step is the step), or None for a plain module."""
    for module in (lightning, hf, timm):
        if module.detect(model):
            return module.LIBRARY
    return None


def adapt(model: nn.Module, seed: int, batch_size: int, declared_inputs: bool
          ) -> Adaptation | None:
    """What the model's library tells about it, or None for a plain ``nn.Module``."""
    library = library_of(model)
    if library == lightning.LIBRARY:
        return lightning.adapt(model, seed, batch_size, declared_inputs)
    if library == hf.LIBRARY:
        return hf.adapt(model, seed)
    if library == timm.LIBRARY:
        return timm.adapt(model, seed)
    return None
