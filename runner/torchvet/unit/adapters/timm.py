"""timm models: inputs of the ``pretrained_cfg`` (or older ``default_cfg``)
``input_size``, and for a classifier the loss timm trains it with — cross-entropy over
``num_classes``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from torch import nn

from ..inputs import GeneratedSource
from .base import Adaptation

LIBRARY = "timm"
CONFIG_ATTRS = ("pretrained_cfg", "default_cfg")


def model_config(model: nn.Module) -> tuple[str, Mapping[str, Any]] | None:
    """(attribute, config) of the first timm-style config that declares an input size."""
    for attr in CONFIG_ATTRS:
        value = getattr(model, attr, None)
        if isinstance(value, Mapping) and value.get("input_size"):
            return attr, value
    return None


def detect(model: nn.Module) -> bool:
    return model_config(model) is not None


def adapt(model: nn.Module, seed: int, batch_size: int, declared_inputs: bool
          ) -> Adaptation:
    name = type(model).__name__
    found = model_config(model)
    assert found is not None
    attr, config = found
    size = tuple(int(s) for s in config["input_size"])
    adaptation = Adaptation(LIBRARY)
    adaptation.inputs = GeneratedSource(
        {"args": [{"shape": size, "dtype": "float32"}], "kwargs": {}}, seed,
        f"{name}.{attr}['input_size'] {size}")
    classes = getattr(model, "num_classes", None)
    if classes is None:
        classes = config.get("num_classes")
    if isinstance(classes, int) and classes > 0:
        adaptation.num_classes = classes
        adaptation.loss = nn.CrossEntropyLoss()
        adaptation.sources["loss"] = (
            f"from CrossEntropyLoss over {name}.num_classes={classes} (timm's training loss)")
    else:
        adaptation.sources["loss"] = (
            f"({name}.num_classes={classes}: a feature extractor without a classifier)")
    return adaptation
