"""The seed article's hand-written model tests, parametrised over the benchmark models.

What a team writes before it has torchvet: output shape and dtype, every parameter changes
after one SGD step, the loss is a non-negative scalar, and the first DataLoader batch has
the right size, dtype and labels. bench/run.py times this suite against
``torchvet run --checks forward.shape,forward.dtype,training.update,training.loss,
data.collate,data.labels``.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

import pytest
import tomllib
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

PROJECT = Path(__file__).resolve().parent.parent
ENTRY_POINTS = tomllib.loads((PROJECT / "pyproject.toml").read_text())["project"][
    "entry-points"]
MODELS = ENTRY_POINTS["torchvet.models"]
DATASETS = ENTRY_POINTS["torchvet.datasets"]
BATCH = 2


def load(value: str) -> Any:
    module, _, attr = value.partition(":")
    return getattr(importlib.import_module(module), attr)


def build(name: str) -> dict[str, Any]:
    """The model and how to feed it, from whatever the factory returns."""
    torch.manual_seed(0)
    made = load(MODELS[name])()
    spec = dict(made) if isinstance(made, dict) else {"model": made}
    model = spec["model"]
    inputs = spec.get("inputs")
    if inputs is None and "dataset" in spec:
        dataset = spec["dataset"]
        inputs = lambda b: torch.stack([dataset[i][0] for i in range(b)])  # noqa: E731
    elif inputs is None and hasattr(model, "example_inputs"):
        example = model.example_inputs[0]
        inputs = lambda b: example[:1].expand(b, *example.shape[1:]).clone()  # noqa: E731
    elif inputs is None:  # first Linear decides the feature count
        first = next(m for m in model.modules() if isinstance(m, nn.Linear))
        inputs = lambda b: torch.randn(b, first.in_features)  # noqa: E731
    elif isinstance(inputs, torch.Tensor):
        fixed = inputs
        inputs = lambda b: fixed[:b]  # noqa: E731
    spec["inputs"] = inputs
    return spec


def call(model: nn.Module, inputs: Any) -> Any:
    return model(**inputs) if isinstance(inputs, dict) else model(inputs)


def primary(out: Any) -> torch.Tensor:
    if isinstance(out, dict):
        return next(iter(out.values()))
    if isinstance(out, (tuple, list)):
        return out[0]
    return out


def loss_of(spec: dict[str, Any], model: nn.Module, batch: int = BATCH) -> torch.Tensor:
    inputs = spec["inputs"](batch)
    if "step" in spec:
        return spec["step"](model, inputs)
    out = call(model, inputs)
    loss = spec.get("loss")
    if loss is None:  # no loss declared: mean squared output, non-negative by construction
        values = out.values() if isinstance(out, dict) else [out]
        return sum(v.float().pow(2).mean() for v in values)
    pred = primary(out)
    if "target" in spec:
        return loss(pred, spec["target"](batch))
    if isinstance(loss, nn.CrossEntropyLoss):
        return loss(pred, torch.randint(0, pred.shape[1], (batch,)))
    return loss(pred)


@pytest.mark.parametrize("name", sorted(MODELS))
def test_output_shape_and_dtype(name: str) -> None:
    spec = build(name)
    model = spec["model"].eval()
    with torch.no_grad():
        out = primary(call(model, spec["inputs"](BATCH)))
    assert out.shape[0] == BATCH
    assert out.dtype == torch.float32


@pytest.mark.parametrize("name", sorted(MODELS))
def test_every_parameter_changes_after_one_sgd_step(name: str) -> None:
    spec = build(name)
    model = spec["model"].train()
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    optimizer.zero_grad()
    loss_of(spec, model).backward()
    optimizer.step()
    unchanged = [n for n, p in model.named_parameters() if torch.equal(p, before[n])]
    assert not unchanged


@pytest.mark.parametrize("name", sorted(MODELS))
def test_loss_is_a_non_negative_scalar(name: str) -> None:
    spec = build(name)
    loss = loss_of(spec, spec["model"].train())
    assert loss.dim() == 0
    assert loss.item() >= 0


def datasets() -> list[str]:
    with_data = [n for n, v in MODELS.items() if "data:" in v]
    return sorted(with_data) + sorted(f"dataset:{n}" for n in DATASETS)


@pytest.mark.parametrize("name", datasets())
def test_first_batch(name: str) -> None:
    if name.startswith("dataset:"):
        made = load(DATASETS[name.partition(":")[2]])()
    else:
        made = load(MODELS[name])()
    dataset: Dataset = made["dataset"]
    batch_size, classes = made["batch_size"], made["num_classes"]
    x, y = next(iter(DataLoader(dataset, batch_size=batch_size)))
    assert x.shape[0] == batch_size and y.shape[0] == batch_size
    assert x.dtype == torch.float32
    assert y.dtype == torch.int64
    assert int(y.min()) >= 0 and int(y.max()) < classes
