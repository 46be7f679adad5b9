"""data.model_fit: a real batch that does not fit the model, or the loss, is named with
its layout and the mismatch; a step runs on whole batches."""

from __future__ import annotations

from typing import Any

import torch

from tests.fixtures import data_fixtures as fx
from tests.helpers import assert_status, assert_where, verdict, vet
from torchvet.results import Status


def test_feature_mismatch_between_data_and_model() -> None:
    result = verdict(fx.feature_mismatch, "data.model_fit")
    assert_status(result, Status.FAILED, "a real batch (args[0]: (4, 6) float32)",
                  "does not fit the model", "mat1 and mat2 shapes cannot be multiplied",
                  "match the model's input layer")
    assert_where(result, "return self.head(self.body(x))", fx.FIXTURE_FILE)


def test_float64_samples_into_a_float32_model() -> None:
    result = verdict(fx.float64_data, "data.model_fit")
    assert_status(result, Status.FAILED, "args[0] is float64 but the parameters are float32",
                  ".float()")


def test_model_fit_runs_the_step_on_whole_batches() -> None:
    def step(model: torch.nn.Module, batch: Any) -> torch.Tensor:
        x, y = batch
        return torch.nn.functional.cross_entropy(model(x), y)

    def factory() -> dict[str, Any]:
        return {"model": fx.Classifier(), "step": step, "dataset": fx.TupleSamples()}

    result = verdict(factory, "data.model_fit")
    assert_status(result, Status.PASSED, "runs through the step")


def test_model_fit_only_applies_to_models() -> None:
    results = vet(fx.tuple_samples, ["data.model_fit"], kind="dataset")
    assert "data.model_fit" not in results


def test_model_fit_runs_the_step_as_training_runs_it_and_leaves_the_model_alone() -> None:
    """A gradient penalty needs autograd and train mode; an EMA step moves the model: the
    step runs on a copy, in train mode, with gradients on."""
    seen: dict[str, Any] = {}

    def step(model: torch.nn.Module, batch: Any) -> torch.Tensor:
        x, y = batch
        x = x.clone().requires_grad_(True)
        out = model(x)
        (penalty,) = torch.autograd.grad(out.sum(), x, create_graph=True)
        seen["training"] = model.training
        with torch.no_grad():
            for p in model.parameters():
                p.mul_(0.5)  # the model's own update, as an EMA step would
        return torch.nn.functional.cross_entropy(out, y) + penalty.pow(2).mean()

    model = fx.Classifier()
    before = {k: v.clone() for k, v in model.state_dict().items()}

    def factory() -> dict[str, Any]:
        return {"model": model, "step": step, "dataset": fx.TupleSamples()}

    result = verdict(factory, "data.model_fit")
    assert_status(result, Status.PASSED, "runs through the step")
    assert seen["training"] is True
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in before.items())
