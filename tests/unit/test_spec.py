"""unit.spec: what a factory returns, normalised — a module, a dict and a Spec alike,
unknown keys warned by name, pyproject settings merged under the factory's own, and
where the inputs come from resolved in order."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from torch import nn

from torchvet import Spec
from torchvet.project.config import UnitConfig
from torchvet.unit.adapters import Adaptation
from torchvet.unit.data_batches import DatasetSource, DatasetTargets
from torchvet.unit.spec import SpecError, merge, normalize_dataset, normalize_model


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


def test_no_inference_names_the_model_and_the_layers_it_reads() -> None:
    # the instructions (with a shape tried on the model) are the worker's: test_worker
    spec = normalize(nn.Sequential(nn.LayerNorm(4)))
    assert spec.inputs is None
    assert spec.inputs_problem.startswith("cannot infer inputs for Sequential")
    assert "Linear, Conv1d/2d/3d, Embedding" in spec.inputs_problem


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


def test_a_dataset_factory_declares_its_validation_split() -> None:
    train = [(torch.zeros(2), 0)] * 5
    val = torch.utils.data.DataLoader([(torch.ones(2), 1)] * 3, batch_size=2)
    spec, warnings = normalize_dataset({"dataset": train, "validation": val, "label": 1},
                                       UnitConfig())
    assert not warnings
    assert spec.validation is not None and spec.validation.dataset is val.dataset
    assert spec.validation.label == 1
    with pytest.raises(SpecError, match="'validation'"):
        normalize_dataset({"dataset": train, "validation": 42}, UnitConfig())


def test_a_dataset_in_the_spec_feeds_inputs_and_targets() -> None:
    data = [(torch.full((3,), float(i)), i % 2) for i in range(6)]
    spec = normalize({"model": nn.Linear(3, 2), "dataset": data, "loss": nn.CrossEntropyLoss()})
    assert isinstance(spec.inputs, DatasetSource) and isinstance(spec.target, DatasetTargets)
    assert spec.inputs.make(2).args[0].shape == (2, 3)
    assert spec.target.make(2).tolist() == [0, 1]
    stepped = normalize({"model": nn.Linear(3, 2), "dataset": data,
                         "step": lambda model, batch: model(batch[0]).sum()})
    assert stepped.target is None  # the step reads the whole batch, labels included


def test_output_dtype_is_parsed_or_refused() -> None:
    assert normalize({"model": nn.Linear(3, 2), "output_dtype": "torch.float64"}
                     ).output_dtype is torch.float64
    with pytest.raises(SpecError, match="unknown dtype 'float63'"):
        normalize({"model": nn.Linear(3, 2), "output_dtype": "float63"})


def test_training_kind_and_ema_are_declared_in_the_spec_or_in_pyproject() -> None:
    spec = normalize({"model": nn.Linear(4, 3), "ema": "target.*", "training": "adversarial"})
    assert spec.ema == ("target.*",) and spec.training == "adversarial"
    config = UnitConfig(ema=("teacher.*",), training="adversarial")
    merged = normalize(Spec(model=nn.Linear(4, 3), ema=["target.*"]), config)
    assert merged.ema == ("target.*", "teacher.*") and merged.training == "adversarial"
    assert normalize(nn.Linear(4, 3)).training == "standard"
    with pytest.raises(SpecError, match="training='gan' is not one of 'standard', "
                                        "'adversarial'"):
        normalize({"model": nn.Linear(4, 3), "training": "gan"})


def test_the_overfit_budget_is_one_predicate_from_the_config() -> None:
    spec = normalize(nn.Linear(4, 2), UnitConfig(overfit_max_params=10))
    assert spec.within_overfit_budget(10)
    assert not spec.within_overfit_budget(11)


def test_an_adaptation_fills_only_what_the_spec_leaves_open() -> None:
    declared = nn.MSELoss()
    spec = normalize({"model": nn.Linear(4, 2), "loss": declared})
    found = Adaptation("lib", loss=nn.CrossEntropyLoss(), optimizer=torch.optim.SGD,
                       num_classes=3, sources={"loss": "lib's", "optimizer": "lib's sgd"})
    merge(spec, found)
    assert spec.loss is declared and "loss" not in spec.sources
    assert spec.optimizer is torch.optim.SGD and spec.sources["optimizer"] == "lib's sgd"
    assert spec.num_classes == 3
