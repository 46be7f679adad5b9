"""learning.gradient_flow: vanishing and exploding gradients along depth are flagged with
the layer and the numbers; deep nets with a sane init, normalisation or residuals pass."""

from __future__ import annotations

from typing import Any

from torch import nn

from tests.fixtures.corpus import learning_models as lm
from tests.fixtures.corpus.healthy_patterns import CASES as HEALTHY_PATTERNS
from tests.fixtures.corpus.learning import (
    pima_deep,
    sine_relu_rnn,
    titanic_deep_init,
    titanic_deep_tanh_tiny,
    titanic_residual,
)
from tests.helpers import assert_status, verdict
from torchvet.results import Status


def test_ten_sigmoid_layers_vanish() -> None:
    result = verdict(lambda: pima_deep(nn.Sigmoid), "learning.gradient_flow")
    assert_status(result, Status.WARNED, "gradients vanish along depth", "across 11 layers",
                  "at 0")
    assert result.data["table"]["rows"][0][0] == "0"


def test_a_tiny_init_vanishes_and_xavier_passes() -> None:
    assert_status(verdict(lambda: titanic_deep_tanh_tiny(0.01), "learning.gradient_flow"),
                  Status.WARNED, "vanish")
    assert_status(verdict(lambda: titanic_deep_tanh_tiny(None), "learning.gradient_flow"),
                  Status.PASSED, "relative gradient")


def test_an_n01_init_explodes_and_he_init_passes() -> None:
    assert_status(verdict(lambda: titanic_deep_init(1.0), "learning.gradient_flow"),
                  Status.WARNED, "explode along depth", "He/Xavier")
    assert_status(verdict(lambda: titanic_deep_init(None), "learning.gradient_flow"),
                  Status.PASSED)


def test_a_recurrent_weight_with_a_large_spectral_radius_explodes() -> None:
    assert_status(verdict(lambda: sine_relu_rnn(1.0), "learning.gradient_flow"),
                  Status.WARNED, "explode", "rnn")
    assert_status(verdict(lambda: sine_relu_rnn(None), "learning.gradient_flow"),
                  Status.PASSED)


def test_layerscale_and_zero_init_residual_branches_are_not_vanishing() -> None:
    for zero_init, scale in ((True, None), (False, 1e-5)):
        result = verdict(lambda z=zero_init, s=scale: titanic_residual(z, s),
                         "learning.gradient_flow")
        assert_status(result, Status.PASSED)


def test_a_gan_is_not_judged_across_its_two_networks() -> None:
    gan: Any = next(c for c in HEALTHY_PATTERNS if c.name == "wgan_gp").factory
    assert_status(verdict(gan, "learning.gradient_flow"), Status.PASSED)


def test_depth_with_batchnorm_passes() -> None:
    def factory() -> dict[str, Any]:
        layers: list[nn.Module] = [nn.Linear(6, 32)]
        for _ in range(7):
            layers += [nn.BatchNorm1d(32), nn.Sigmoid(), nn.Linear(32, 32)]
        layers += [nn.Linear(32, 1)]
        return {"model": nn.Sequential(*layers), "dataset": lm.titanic(),
                "loss": nn.BCEWithLogitsLoss()}

    assert_status(verdict(factory, "learning.gradient_flow"), Status.PASSED)
