"""unit.footprint: what a unit's checks need in memory, estimated before they run — the
weights counted once, the bytes autograd keeps for backward counted exactly by the probe,
and each check's extra instances."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from tests.helpers import ROOT
from torchvet.project.config import UnitConfig
from torchvet.project.discovery import Factory
from torchvet.unit.context import CheckContext
from torchvet.unit.footprint import (
    SLACK,
    STATELESS_PARAMS,
    Sizes,
    TrainingWay,
    check_need,
    model_sizes,
    probe,
    training_need,
)
from torchvet.unit.locate import Locator
from torchvet.unit.rss import Meter
from torchvet.unit.spec import normalize_model

HERE = Path(__file__)
MiB = 1 << 20


def context(factory: Any) -> CheckContext:
    spec = normalize_model(factory(), "net", UnitConfig(), 0)
    record = Factory(name="net", kind="model", dist="", value="tests:net", file=str(HERE),
                     line=1)
    return CheckContext(record, 0, "cpu", Locator([HERE.parent], ROOT), factory, spec)


def mlp() -> dict[str, Any]:
    model = nn.Sequential(nn.Linear(256, 1024), nn.ReLU(), nn.Linear(1024, 256))
    return {"model": model, "inputs": lambda b: torch.randn(b, 256), "batch_size": 64}


def test_probe_counts_what_backward_would_keep_and_leaves_the_model_as_it_was() -> None:
    ctx = context(mlp)
    ctx.model.train()
    sizes = probe(ctx, Meter())
    # the first Linear keeps its input, ReLU its output, the second Linear that output
    # again; weights are not activations
    assert sizes.saved_activations == 64 * 256 * 4 + 2 * 64 * 1024 * 4
    assert sizes.weights == sizes.trainable == (256 * 1024 * 2 + 1024 + 256) * 4
    assert sizes.trainable_params == 256 * 1024 * 2 + 1024 + 256
    assert sizes.largest == 256 * 1024 * 4 and sizes.probe_error == ""
    assert ctx.model.training, "the probe restores the training flag"
    assert all(p.grad is None for p in ctx.model.parameters())


def test_probe_of_a_broken_forward_still_gives_the_weights() -> None:
    def broken() -> dict[str, Any]:
        return {"model": nn.Linear(4, 4), "inputs": lambda b: torch.randn(b, 5)}

    sizes = probe(context(broken), Meter())
    assert "mat1 and mat2 shapes cannot be multiplied" in sizes.probe_error
    assert sizes.weights == 20 * 4


def test_tied_weights_count_once() -> None:
    def tied() -> nn.Module:
        model = nn.Sequential(nn.Embedding(100, 8), nn.Linear(8, 100, bias=False))
        model[1].weight = model[0].weight
        model.example_inputs = (torch.randint(0, 100, (2, 3)),)
        return model

    assert model_sizes(context(tied)).weights == 100 * 8 * 4


def test_training_layouts_cost_what_they_hold() -> None:
    ctx = context(mlp)
    sizes = Sizes(weights=400 * MiB, trainable=400 * MiB, trainable_params=100_000_000,
                  largest=100 * MiB)
    need = {(lend, spill, stateless): training_need(sizes, ctx, TrainingWay(lend, spill,
                                                                            stateless))
            for lend in (False, True) for spill in (False, True) for stateless in (False, True)}
    grads = 400 * MiB + SLACK
    assert need[(True, True, True)] == grads + 100 * MiB  # one tensor read back at a time
    assert need[(False, True, True)] == need[(True, True, True)] + 400 * MiB  # the copy
    assert need[(False, False, True)] == grads + 800 * MiB  # copy + saved values in memory
    assert need[(True, True, False)] == need[(True, True, True)] + 800 * MiB  # Adam's state
    # in place, in memory: what each step is compared against and the starting values
    assert need[(True, False, True)] == need[(False, False, True)]
    assert sizes.stateless and not Sizes(trainable_params=STATELESS_PARAMS).stateless


def test_each_check_needs_its_own_extra_instances() -> None:
    ctx = context(mlp)
    w = 400 * MiB
    sizes = Sizes(weights=w, trainable=w, trainable_params=100_000_000, largest=w // 4)
    training = 3 * w
    assert check_need("state.roundtrip", sizes, ctx, training) >= 2 * w
    assert check_need("portability.device", sizes, ctx, training) == SLACK, "meta: no data"
    assert check_need("portability.autocast", sizes, ctx, training) == w // 2 + SLACK, \
        "a large model's copy shares its parameters; autocast caches them in 16 bits"
    for check_id in ("training.loss", "training.gradients", "training.update"):
        assert check_need(check_id, sizes, ctx, training) == training + SLACK
    assert check_need("training.update", sizes, ctx, 0) == SLACK, "the run is memoised"
    assert check_need("forward.runs", sizes, ctx, training) == SLACK
    for check_id in ("training.loss_at_init", "learning.dead_units", "learning.progress"):
        assert check_need(check_id, sizes, ctx, training) >= w, \
            f"{check_id}: the learning probe runs on a copy, in train mode"
