"""unit.adapters.lightning on real LightningModules returned as bare modules:
training_step on a train_dataloader() batch, configure_optimizers() in each of its forms,
the surrogate (with the reason) where the module's own step cannot run outside a Trainer,
and a broken training_step still flagged."""

from __future__ import annotations

import copy

import pytest
import torch

pytest.importorskip("lightning")

from tests.fixtures import models_lightning as lit
from tests.helpers import assert_status, vet
from torchvet.project.config import UnitConfig
from torchvet.results import Status
from torchvet.unit.adapters.lightning import SameOptimizer, first_optimizer
from torchvet.unit.spec import normalize_model

TRAINING = ["forward.runs", "training.loss", "training.gradients", "training.update"]


def problems(results: dict) -> list[str]:
    return [f"{r.id}: {r.status.value}: {r.message}" for r in results.values()
            if r.status not in (Status.PASSED, Status.SKIPPED)]


def test_a_lightning_module_is_trained_by_its_own_step_and_optimizer() -> None:
    results = vet(lit.lit_classifier)
    assert not problems(results), problems(results)
    assert_status(results["forward.runs"], Status.PASSED,
                  "inputs: the first element of a LitClassifier.train_dataloader() batch")
    assert_status(results["training.loss"], Status.PASSED,
                  "from LitClassifier.training_step on a train_dataloader() batch",
                  "optimizer: LitClassifier.configure_optimizers() (SGD)")
    assert_status(results["training.overfit"], Status.PASSED)


def test_the_step_runs_on_the_first_batch_cut_to_the_training_batch_size() -> None:
    spec = normalize_model(lit.lit_classifier(), "lit", UnitConfig(), seed=0)
    assert spec.step is not None and spec.step.batch is not None
    x, y = spec.step.batch
    assert x.shape == (2, 8) and y.shape == (2,)
    model = copy.deepcopy(spec.model)
    loss = spec.step(model, None)
    assert isinstance(loss, torch.Tensor) and loss.requires_grad


def test_example_input_array_stays_the_input_and_no_batch_means_the_surrogate() -> None:
    results = vet(lit.lit_example_only, TRAINING)
    assert not problems(results), problems(results)
    assert_status(results["forward.runs"], Status.PASSED,
                  "inputs: LitExampleOnly.example_input_array")
    assert_status(results["training.loss"], Status.PASSED, "surrogate loss",
                  "LitExampleOnly.train_dataloader() raised NotImplementedError",
                  "declare inputs= or step=")


def test_declared_inputs_are_the_batch_when_there_is_no_dataloader() -> None:
    def factory() -> dict:
        x = torch.randn(4, 8, generator=torch.Generator().manual_seed(1))
        return {"model": lit.LitExampleOnly(), "inputs": (x, torch.tensor([0, 1, 2, 0]))}

    spec = normalize_model(factory(), "lit", UnitConfig(), seed=0)
    assert spec.step is not None and spec.sources["loss"] == (
        "from LitExampleOnly.training_step on the declared inputs")


def test_manual_optimization_falls_back_to_the_surrogate_and_says_why() -> None:
    result = vet(lit.lit_manual, ["training.loss"])["training.loss"]
    assert_status(result, Status.PASSED, "surrogate loss", "LitManual optimizes manually")


def test_the_dict_form_with_a_scheduler_gives_its_optimizer_and_groups() -> None:
    spec = normalize_model(lit.lit_with_scheduler(), "lit", UnitConfig(), seed=0)
    assert spec.optimizer is not None
    assert spec.sources["optimizer"] == "LitWithScheduler.configure_optimizers() (AdamW)"
    clone = copy.deepcopy(spec.model)
    optimizer = spec.optimizer(clone.parameters())
    assert isinstance(optimizer, torch.optim.AdamW)
    assert [g["lr"] for g in optimizer.param_groups] == [1e-3, 1e-2]
    assert optimizer.param_groups[1]["params"][0] is clone.net[2].weight
    assert optimizer.param_groups[0]["weight_decay"] == 0.01


def test_every_form_of_configure_optimizers_yields_the_first_optimizer() -> None:
    opt = torch.optim.SGD(torch.nn.Linear(2, 2).parameters(), lr=0.1)
    sched = torch.optim.lr_scheduler.StepLR(opt, 1)
    for form in (opt, [opt], (opt,), ([opt], [sched]), {"optimizer": opt, "lr_scheduler": sched},
                 [{"optimizer": opt, "lr_scheduler": {"scheduler": sched}}]):
        assert first_optimizer(form) is opt, form
    assert first_optimizer(None) is None


def test_the_rebuilt_optimizer_holds_the_copy_not_the_original() -> None:
    model = torch.nn.Sequential(torch.nn.Linear(2, 3), torch.nn.Linear(3, 1))
    make = SameOptimizer(model, torch.optim.SGD(model.parameters(), lr=0.5, momentum=0.9))
    clone = copy.deepcopy(model)
    rebuilt = make(clone.parameters())
    held = {id(p) for g in rebuilt.param_groups for p in g["params"]}
    assert held == {id(p) for p in clone.parameters()}
    assert rebuilt.param_groups[0]["momentum"] == 0.9


def test_a_training_step_returning_a_float_is_flagged() -> None:
    result = vet(lit.lit_loss_item, ["training.loss"])["training.loss"]
    assert_status(result, Status.FAILED, "float, not a tensor", "not loss.item()")
