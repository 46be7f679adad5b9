"""learning.dead_units and learning.saturation: a healthy model passes, a dead or
saturated one is flagged with the layer, its line and the numbers."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from tests.fixtures.corpus import learning_models as lm
from tests.fixtures.corpus.learning import iris_relu_bias, sine_tanh_output, titanic_relu_bias
from tests.helpers import assert_status, line_in, verdict
from torchvet.results import Status


class BiasedNet(nn.Module):
    """Hidden units shifted by ``bias``: at -10 no sample switches a ReLU on."""

    def __init__(self, bias: float | None) -> None:
        super().__init__()
        self.hidden = nn.Linear(4, 32)
        self.act = nn.ReLU()
        self.head = nn.Linear(32, 3)
        if bias is not None:
            nn.init.constant_(self.hidden.bias, bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.act(self.hidden(x)))


def biased(bias: float | None) -> Any:
    return lambda: {"model": BiasedNet(bias), "dataset": lm.iris(), "loss": nn.CrossEntropyLoss(),
                    "num_classes": 3}


def test_a_healthy_relu_net_passes() -> None:
    result = verdict(biased(None), "learning.dead_units")
    assert_status(result, Status.PASSED, "1 ReLU activation(s)", "64 samples")
    assert result.data["table"]["columns"][:3] == ["layer", "type", "width"]


def test_a_layer_dead_for_every_sample_fails_at_its_assignment() -> None:
    result = verdict(biased(-10.0), "learning.dead_units")
    assert_status(result, Status.FAILED, "every one of the 32 units of act (relu)",
                  "all 64 samples", "the layer is dead", "bias init")
    assert result.line == line_in(Path(__file__), "self.act = nn.ReLU()")
    assert "hidden" in result.details  # the per-layer table


def test_corpus_dead_relus_fail_and_their_twins_pass() -> None:
    assert_status(verdict(lambda: iris_relu_bias(-10.0), "learning.dead_units"),
                  Status.FAILED, "dead")
    assert_status(verdict(lambda: titanic_relu_bias(-3.0), "learning.dead_units"),
                  Status.FAILED, "units of 3 (relu)")
    assert_status(verdict(lambda: titanic_relu_bias(None), "learning.dead_units"),
                  Status.PASSED)


def test_a_mostly_dead_layer_warns() -> None:
    def factory() -> dict[str, Any]:
        model = BiasedNet(None)
        with torch.no_grad():
            model.hidden.bias[:30] = -10.0  # 30 of 32 units off, 2 alive
        return {"model": model, "dataset": lm.iris(), "loss": nn.CrossEntropyLoss()}

    assert_status(verdict(factory, "learning.dead_units"), Status.WARNED,
                  "94% of the 32 units of act (relu)", "LeakyReLU")


def test_a_few_samples_judge_only_wide_layers() -> None:
    """Two fixed samples can leave a narrow layer silent by chance: not a verdict."""

    def factory() -> dict[str, Any]:
        model = nn.Sequential(nn.Linear(4, 2), nn.ReLU(), nn.Linear(2, 1))
        nn.init.constant_(model[0].bias, -10.0)
        return {"model": model, "inputs": torch.randn(2, 4), "loss": nn.MSELoss()}

    assert_status(verdict(factory, "learning.dead_units"), Status.PASSED)


def test_a_saturated_tanh_output_warns_and_its_twin_passes() -> None:
    result = verdict(lambda: sine_tanh_output(10.0), "learning.saturation")
    assert_status(result, Status.WARNED, "output tanh at 3 (tanh)", "beyond +-2.25",
                  "saturated")
    assert_status(verdict(lambda: sine_tanh_output(None), "learning.saturation"),
                  Status.PASSED, "sigmoid/tanh activation(s)")


def test_saturated_hidden_units_under_a_trainable_head_are_not_flagged() -> None:
    def factory() -> dict[str, Any]:
        model = lm.mlp(6, 16, 1, act=nn.Sigmoid)
        lm.init_linear(model[0], weight_std=10.0)  # hidden sigmoid saturated, head linear
        return {"model": model, "dataset": lm.titanic(), "loss": nn.BCEWithLogitsLoss()}

    assert_status(verdict(factory, "learning.saturation"), Status.PASSED)
