"""The probe: one instrumented training step at init that every learning diagnostic
reads — what it records about activations, layers, loss calls and the step itself."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from tests.fixtures.corpus import learning_models as lm
from tests.fixtures.corpus.healthy_patterns import CASES as HEALTHY_PATTERNS
from tests.helpers.unit import make_context
from torchvet.checks.shared.probe import init_probe, probe_batch


class FunctionalHead(nn.Module):
    """ReLU and sigmoid applied with functions, the output squeezed before the loss."""

    def __init__(self) -> None:
        super().__init__()
        self.fc1 = nn.Linear(4, 8)
        self.fc2 = nn.Linear(8, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.fc2(F.relu(self.fc1(x))))


def functional_head() -> dict[str, Any]:
    return {"model": FunctionalHead(), "inputs": lambda b: torch.randn(b, 4),
            "step": lambda model, x: F.binary_cross_entropy(
                model(x).squeeze(1), (x[:, 0] > 0).float())}


def test_activations_are_recorded_with_their_module_or_line() -> None:
    probe = init_probe(make_context(functional_head))
    ops = [(a.op, a.module) for a in probe.activations]
    assert ops == [("relu", ""), ("sigmoid", "")]
    relu, sigmoid = probe.activations
    assert relu.where is not None and relu.where[0].endswith("test_probe.py")
    assert sigmoid.is_output and not relu.is_output
    assert relu.dead is not None and sigmoid.saturated == 0.0


def test_a_loss_call_knows_the_activation_that_fed_it_through_a_view() -> None:
    probe = init_probe(make_context(functional_head))
    (call,) = probe.losses
    assert call.op == "binary_cross_entropy"
    assert call.source is not None and call.source.op == "sigmoid"
    assert tuple(call.input.shape) == (probe.batch,)


def test_module_activations_are_named_by_their_path() -> None:
    probe = init_probe(make_context(
        lambda: {"model": lm.mlp(4, 8, 3), "inputs": lambda b: torch.randn(b, 4),
                 "loss": nn.CrossEntropyLoss()}))
    assert [a.label for a in probe.activations] == ["1 (relu)"]
    assert [(layer.name, layer.kind, layer.weight) for layer in probe.layers] == [
        ("0", "Linear", True), ("2", "Linear", True)]
    assert set(probe.grad_norms) == {"0.weight", "0.bias", "2.weight", "2.bias"}


def test_the_batch_grows_for_generated_and_dataset_inputs_not_for_a_fixed_example() -> None:
    generated = make_context(lambda: {"model": nn.Linear(4, 2),
                                       "inputs": lambda b: torch.randn(b, 4)})
    fixed = make_context(lambda: {"model": nn.Linear(4, 2), "inputs": torch.randn(3, 4)})
    data = make_context(lambda: {"model": nn.Linear(4, 1), "dataset": lm.pima(),
                                  "loss": nn.BCEWithLogitsLoss()})
    assert probe_batch(generated) == 64
    assert probe_batch(fixed) == 2
    assert probe_batch(data) == 64


def _case(name: str) -> Any:
    return next(c for c in HEALTHY_PATTERNS if c.name == name).factory


def test_a_step_that_switches_requires_grad_is_seen_as_adversarial() -> None:
    assert init_probe(make_context(_case("gan"))).toggled == ["discriminator.0",
                                                              "discriminator.2",
                                                              "discriminator.4"]
    assert init_probe(make_context(_case("vae"))).toggled == []


def test_state_the_step_updates_itself_is_recorded() -> None:
    moco = init_probe(make_context(_case("moco")))
    assert any("queue" in name for name in moco.self_updated), moco.self_updated
    assert init_probe(make_context(_case("vae"))).self_updated == []


def test_torchscript_submodules_are_stepped_over_not_hooked() -> None:
    probe = init_probe(make_context(_case("scripted_submodule")))
    assert probe.losses, "the step ran"
