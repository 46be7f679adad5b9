"""Hugging Face ``transformers`` models: inputs from ``dummy_inputs`` (the model's
``main_input_name``), the model's own loss through ``labels=`` when its head computes
one, ``config.num_labels`` as the label range of classification heads."""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from ..inputs import FixedSource, GeneratedSource, InputSource
from ..seeding import derived_seed
from ..text import one_line
from .base import Adaptation, derives_from

LIBRARY = "Hugging Face"
# head class-name suffixes -> how labels are made for the model's own loss
COPY_HEADS = ("ForCausalLM", "LMHeadModel", "ForMaskedLM", "ForConditionalGeneration",
              "WithLMHead")
CLASS_HEADS = ("ForSequenceClassification", "ForImageClassification",
               "ForAudioClassification")
TOKEN_HEADS = ("ForTokenClassification",)


def detect(model: nn.Module) -> bool:
    return derives_from(model, ("transformers.",)) and hasattr(model, "config")


def adapt(model: nn.Module, seed: int, batch_size: int, declared_inputs: bool
          ) -> Adaptation:
    name = type(model).__name__
    main = str(getattr(model, "main_input_name", "input_ids"))
    found = Adaptation(LIBRARY)
    found.inputs, found.inferred_inputs = _inputs(model, main, seed)
    kind = label_kind(model, main)
    num_labels = getattr(model.config, "num_labels", None)
    if kind in ("class", "token", "multilabel") and isinstance(num_labels, int):
        found.num_classes = num_labels
    if kind is None:
        found.sources["loss"] = (
            f"({name} computes no loss of its own: its forward takes no labels= or its "
            "head is not one torchvet knows how to label; declare step= to use yours)")
        return found
    found.step = ModelLoss(name, kind, main, num_labels or 2, seed)
    labels = _labels_text(kind, main, num_labels or 2)
    found.sources["loss"] = f"from {name}(**inputs, labels={labels}).loss"
    return found


def _inputs(model: nn.Module, main: str, seed: int) -> tuple[InputSource | None, bool]:
    name = type(model).__name__
    try:
        dummy = model.dummy_inputs
    except Exception:  # a model whose dummy_inputs needs what it lacks: use the config
        dummy = None
    if isinstance(dummy, Mapping) and main in dummy:
        return FixedSource(dict(dummy), seed, f"{name}.dummy_inputs"), False
    if main == "pixel_values":
        config = model.config
        channels = int(getattr(config, "num_channels", 3) or 3)
        size = getattr(config, "image_size", 224) or 224
        height, width = (size, size) if isinstance(size, int) else (int(size[0]), int(size[1]))
        descriptors = {"args": [], "kwargs": {
            "pixel_values": {"shape": (channels, height, width), "dtype": "float32"}}}
        where = f"{name}.config (num_channels={channels}, image_size={size}) as pixel_values"
        return GeneratedSource(descriptors, seed, where), True
    return None, False


def label_kind(model: nn.Module, main: str) -> str | None:
    """How to label the model's own loss: copy the main input (language modelling), a
    class per sample or per token, a regression value, or None (no loss of its own)."""
    try:
        takes_labels = "labels" in inspect.signature(model.forward).parameters
    except (TypeError, ValueError):
        takes_labels = False
    if not takes_labels:
        return None
    name = type(model).__name__
    config = model.config
    if name.endswith(COPY_HEADS):
        return "copy" if main == "input_ids" else None
    if name.endswith(TOKEN_HEADS):
        return "token"
    if name.endswith(CLASS_HEADS):
        problem = getattr(config, "problem_type", None)
        if problem == "regression" or getattr(config, "num_labels", 2) == 1:
            return "regression"
        return "multilabel" if problem == "multi_label_classification" else "class"
    return None


def _labels_text(kind: str, main: str, num_labels: int) -> str:
    return {
        "copy": main,
        "class": f"random classes in [0, config.num_labels={num_labels})",
        "token": f"random token classes in [0, config.num_labels={num_labels})",
        "regression": "random floats (config.num_labels=1)",
        "multilabel": f"random 0/1 targets for config.num_labels={num_labels}",
    }[kind]


class ModelLoss:
    """``step(model, inputs)``: the model's own loss, with labels made for its head
    (deterministic in the seed and the input's shape) unless the inputs carry some."""

    def __init__(self, model_name: str, kind: str, main: str, num_labels: int, seed: int
                 ) -> None:
        self.model_name = model_name
        self.kind, self.main, self.num_labels, self.seed = kind, main, num_labels, seed

    def labels(self, main: torch.Tensor) -> torch.Tensor:
        gen = torch.Generator().manual_seed(
            derived_seed(self.seed, "hf-labels", tuple(main.shape)))
        batch = main.shape[0]
        if self.kind == "copy":
            return main.clone()
        if self.kind == "class":
            made = torch.randint(0, self.num_labels, (batch,), generator=gen)
        elif self.kind == "token":
            made = torch.randint(0, self.num_labels, tuple(main.shape[:2]), generator=gen)
        elif self.kind == "regression":
            made = torch.randn(batch, generator=gen)
        else:
            made = (torch.rand(batch, self.num_labels, generator=gen) > 0.5).float()
        return made.to(main.device)

    def __call__(self, model: nn.Module, inputs: Any) -> Any:
        kwargs = dict(inputs) if isinstance(inputs, Mapping) else {self.main: inputs}
        if "labels" not in kwargs:
            kwargs["labels"] = self.labels(kwargs[self.main])
        out = model(**kwargs)
        loss = getattr(out, "loss", None)
        if loss is None and isinstance(out, (tuple, list)) and out:
            loss = out[0]  # return_dict=False: the loss comes first
        if loss is None:
            raise TypeError(
                f"{type(model).__name__} returned no loss for labels= ({one_line(out)[:80]}): "
                "declare step= in the spec")
        return loss
