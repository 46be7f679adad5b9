"""learning.input_scale: raw inputs far from unit scale are flagged at the first layer;
standardised inputs, inputs in centimetres and a normalisation at the input pass."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from tests.fixtures.corpus import learning_models as lm
from tests.fixtures.corpus.learning import bars_cnn, letter_codes_mlp, pima_mlp
from tests.helpers import assert_status, verdict
from torchvet.results import Status

CHECK = "learning.input_scale"


def test_raw_clinical_features_warn_naming_the_feature() -> None:
    result = verdict(lambda: pima_mlp(False), CHECK)
    assert_status(result, Status.WARNED, "far from unit scale", "feature 4", "standardise")
    assert "feature 0: mean" in result.details
    assert_status(verdict(lambda: pima_mlp(True), CHECK), Status.PASSED)


def test_pixels_in_0_255_warn() -> None:
    assert_status(verdict(lambda: bars_cnn(255.0), CHECK), Status.WARNED,
                  "features.0 (Conv2d)", "pixels / 255")
    assert_status(verdict(lambda: bars_cnn(1.0), CHECK), Status.PASSED)


def test_an_offset_far_from_zero_warns_even_with_a_small_spread() -> None:
    assert_status(verdict(lambda: letter_codes_mlp(False), CHECK), Status.WARNED, "mean 6")


def test_iris_in_centimetres_passes() -> None:
    def factory() -> dict[str, Any]:
        return {"model": lm.mlp(4, 16, 3), "dataset": lm.iris(scaled=False),
                "loss": nn.CrossEntropyLoss()}

    assert_status(verdict(factory, CHECK), Status.PASSED, "at most 5.")


def test_a_batchnorm_at_the_input_or_right_after_the_first_layer_passes() -> None:
    def before() -> dict[str, Any]:
        model = nn.Sequential(nn.BatchNorm1d(8), nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 1))
        return {"model": model, "dataset": lm.pima(scaled=False),
                "loss": nn.BCEWithLogitsLoss()}

    def after() -> dict[str, Any]:
        model = nn.Sequential(nn.Linear(8, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Linear(16, 1))
        return {"model": model, "dataset": lm.pima(scaled=False),
                "loss": nn.BCEWithLogitsLoss()}

    assert_status(verdict(before, CHECK), Status.PASSED)
    assert_status(verdict(after, CHECK), Status.PASSED, "normalised right after")


def test_a_model_that_scales_its_input_first_passes() -> None:
    class Scaled(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc = nn.Linear(4, 2)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.fc(x / 255.0)

    assert_status(verdict(lambda: {"model": Scaled(),
                                   "inputs": lambda b: torch.rand(b, 4) * 255}, CHECK),
                  Status.PASSED)
