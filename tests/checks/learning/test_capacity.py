"""learning.capacity (warns): a 1-unit bottleneck, a max-pool collapsing the map to 1x1
and a dropout that drops nearly everything; a 2-d embedding, global average pooling and a
heavy-but-sane dropout pass."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from tests.fixtures.corpus.learning import (
    bars_global_pool,
    blobs_cnn,
    iris_2d_embedding,
    pima_dropout,
    pima_heavy_dropout,
    rings_first_layer,
)
from tests.helpers import assert_status, verdict
from torchvet.results import Status

CHECK = "learning.capacity"


def test_a_one_unit_layer_before_a_three_class_head_warns() -> None:
    assert_status(verdict(lambda: rings_first_layer(1), CHECK), Status.WARNED,
                  "0 (Linear 2->1) is one unit wide", "narrower than the 3 classes",
                  "Linear(2, 16)")
    assert_status(verdict(lambda: rings_first_layer(16), CHECK), Status.PASSED)


def test_a_two_unit_embedding_before_three_classes_passes() -> None:
    assert_status(verdict(iris_2d_embedding, CHECK), Status.PASSED)


def test_a_one_unit_attention_score_is_not_a_bottleneck() -> None:
    class AttentionPool(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.score = nn.Linear(8, 1)
            self.head = nn.Linear(8, 3)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            weights = self.score(x).softmax(dim=1)
            return self.head((weights * x).sum(1))

    def factory() -> dict[str, Any]:
        return {"model": AttentionPool(), "inputs": lambda b: torch.randn(b, 5, 8),
                "loss": nn.CrossEntropyLoss(), "target": lambda b: torch.arange(b) % 3}

    assert_status(verdict(factory, CHECK), Status.PASSED)


def test_a_max_pool_to_1x1_warns_and_global_average_pooling_passes() -> None:
    assert_status(verdict(lambda: blobs_cnn(6), CHECK), Status.WARNED,
                  "collapses the 6x6 feature map to 1x1", "MaxPool2d(2)")
    assert_status(verdict(lambda: blobs_cnn(2), CHECK), Status.PASSED)
    assert_status(verdict(bars_global_pool, CHECK), Status.PASSED)


def test_dropout_ported_from_keep_prob_warns() -> None:
    assert_status(verdict(lambda: pima_dropout(0.9), CHECK), Status.WARNED,
                  "dropout in 2 drops 90% of the units", "keep_prob=0.9 is nn.Dropout(p=0.1)")
    assert_status(verdict(pima_heavy_dropout, CHECK), Status.PASSED)
    assert_status(verdict(lambda: pima_dropout(0.1), CHECK), Status.PASSED)

