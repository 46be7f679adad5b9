"""Spec normalisation, input resolution and pytrees of outputs."""

from __future__ import annotations

from collections import OrderedDict, namedtuple
from dataclasses import dataclass
from typing import Any

import pytest
import torch
from torch import nn

from torchvet import Spec
from torchvet.project.config import UnitConfig
from torchvet.unit.pytree import leaves, map_tensors, primary_leaf, structure
from torchvet.unit.spec import (
    FixedSource,
    Inputs,
    SpecError,
    infer_descriptors,
    normalize_dataset,
    normalize_model,
)


def normalize(obj: Any, config: UnitConfig | None = None) -> Any:
    return normalize_model(obj, "net", config or UnitConfig(), seed=0)


def test_module_dict_and_spec_are_equivalent() -> None:
    model = nn.Linear(4, 2)
    for obj in (model, {"model": model}, Spec(model=model)):
        spec = normalize(obj)
        assert spec.model is model and spec.batch_size == 2 and not spec.warnings
        assert spec.inputs is not None and spec.inferred_inputs


def test_unknown_dict_keys_are_warned_by_name() -> None:
    spec = normalize({"model": nn.Linear(4, 2), "lossfn": None})
    assert spec.warnings and "'lossfn'" in spec.warnings[0] and "did you mean 'loss'" in (
        spec.warnings[0])


@pytest.mark.parametrize(("obj", "fragment"), [
    ("resnet", "returned builtins.str"),
    ({"inputs": torch.zeros(1)}, "not an nn.Module"),
    ([nn.Linear(2, 2)], "returned builtins.list"),
])
def test_unusable_returns_explain_what_to_return(obj: Any, fragment: str) -> None:
    with pytest.raises(SpecError, match=fragment):
        normalize(obj)


def test_input_resolution_order() -> None:
    class WithExample(nn.Linear):
        def __init__(self) -> None:
            super().__init__(4, 2)
            self.example_input_array = torch.ones(1, 4)

    config = UnitConfig(inputs={"args": [{"shape": (4,), "dtype": "float32"}], "kwargs": {}})
    assert "pyproject" not in normalize(WithExample()).inputs.description
    assert "example_input_array" in normalize(WithExample()).inputs.description
    assert "[tool.torchvet.models.net]" in normalize(WithExample(), config).inputs.description
    declared = normalize({"model": WithExample(), "inputs": torch.zeros(3, 4)}, config)
    assert declared.inputs.description == "the spec's inputs"


def test_fixed_inputs_are_rebatched_and_perturbed() -> None:
    tokens = torch.tensor([[5, 6, 7], [8, 9, 5]])
    source = FixedSource({"ids": tokens, "scale": torch.tensor(2.0)}, 0, "x")
    three = source.make(3)
    assert three.kwargs["ids"].shape == (3, 3) and three.kwargs["scale"].dim() == 0
    assert torch.equal(three.kwargs["ids"][2], tokens[0])
    other = source.make(3, variant=1)
    assert not torch.equal(other.kwargs["ids"], three.kwargs["ids"])
    assert other.kwargs["ids"].dtype == torch.int64
    assert int(other.kwargs["ids"].min()) >= 5 and int(other.kwargs["ids"].max()) <= 9
    assert torch.equal(source.make(3, variant=1).kwargs["ids"], other.kwargs["ids"])


def test_callable_inputs_are_seeded_per_call() -> None:
    spec = normalize({"model": nn.Linear(4, 2), "inputs": lambda b: torch.randn(b, 4)})
    first, again = spec.inputs.make(2), spec.inputs.make(2)
    assert torch.equal(first.args[0], again.args[0])
    assert not torch.equal(first.args[0], spec.inputs.make(2, variant=1).args[0])


@pytest.mark.parametrize(("model", "shape", "dtype"), [
    (nn.Sequential(nn.Linear(7, 2)), (7,), "float32"),
    (nn.Conv2d(3, 4, 3), (3, 32, 32), "float32"),
    (nn.Sequential(nn.Conv1d(2, 4, 3)), (2, 32), "float32"),
    (nn.Sequential(nn.Embedding(11, 4)), (16,), "int64"),
    (nn.LSTM(5, 4, batch_first=True), (8, 5), "float32"),
])
def test_first_layer_inference(model: nn.Module, shape: tuple, dtype: str) -> None:
    found = infer_descriptors(model)
    assert found is not None
    descriptor = found[0]["args"][0]
    assert descriptor["shape"] == shape and descriptor["dtype"] == dtype


def test_no_inference_gives_instructions_naming_the_model() -> None:
    spec = normalize(nn.Sequential(nn.LayerNorm(4)))
    assert spec.inputs is None
    assert "[tool.torchvet.models.net]" in spec.inputs_problem
    assert "input_shape" in spec.inputs_problem
    assert infer_descriptors(nn.LSTM(5, 4)) is None  # seq-first: batch is not dim 0


def test_config_merges_under_the_spec() -> None:
    config = UnitConfig(frozen=("a.*",), skip={"export.*": "slow"}, batch_size=8,
                        output_shape=(None, 3))
    spec = normalize({"model": nn.Linear(4, 3), "frozen": ["b.*"], "batch_size": 4}, config)
    assert spec.frozen == ("b.*", "a.*") and spec.batch_size == 4
    assert spec.skip == {"export.*": "slow"} and spec.output_shape == (None, 3)


def test_dataset_factories() -> None:
    data = [(torch.zeros(2), 0)] * 5
    spec, warnings = normalize_dataset({"dataset": data, "batch_size": 2, "nclasses": 3},
                                       UnitConfig())
    assert spec.batch_size == 2 and "'nclasses'" in warnings[0]
    loader = torch.utils.data.DataLoader(data, batch_size=3)
    spec, _ = normalize_dataset(loader, UnitConfig())
    assert spec.loader is loader and spec.batch_size == 3
    with pytest.raises(SpecError, match="a dataset must be"):
        normalize_dataset(42, UnitConfig())


Pair = namedtuple("Pair", ["logits", "aux"])


@dataclass
class Output:
    loss: torch.Tensor | None
    logits: torch.Tensor


class ModelOutput(OrderedDict):
    """Like transformers' ModelOutput: a dict and a dataclass at once."""


def test_pytree_paths_and_structure() -> None:
    t = torch.zeros(2, 3)
    tree = {"a": (t, [t]), "b": Pair(t, t), "c": Output(None, t), "n": 3}
    paths = [p for p, _ in leaves(tree)]
    assert paths == ['out["a"][0]', 'out["a"][1][0]', 'out["b"].logits', 'out["b"].aux',
                     'out["c"].logits']
    doubled = map_tensors(tree, lambda x: x + 1)
    assert isinstance(doubled["b"], Pair) and isinstance(doubled["c"], Output)
    assert float(doubled["c"].logits.sum()) == 6.0 and doubled["n"] == 3
    assert "Pair" not in structure(t) and structure([t]) == "list[Tensor]"


def test_primary_leaf_prefers_logits() -> None:
    out = {"hidden": torch.zeros(2, 8), "logits": torch.zeros(2, 3), "loss": torch.tensor(1.0)}
    assert primary_leaf(out)[0] == 'out["logits"]'
    mo = ModelOutput(loss=torch.tensor(0.5), logits=torch.zeros(2, 3))
    assert primary_leaf(mo)[0] == 'out["logits"]'
    assert primary_leaf((torch.tensor(1.0), torch.zeros(2, 5)))[0] == "out[1]"


def test_inputs_user_form() -> None:
    t = torch.zeros(2)
    assert Inputs.from_user(t).user_form() is t
    assert Inputs.from_user({"x": t}).user_form() == {"x": t}
    assert Inputs.from_user((t, t)).user_form() == (t, t)
