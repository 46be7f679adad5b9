"""unit.inputs: what a model is fed — fixed examples re-batched and perturbed, seeded
callables, generated tensors from descriptors, inference from the first layer, and
targets for torch's own losses."""

from __future__ import annotations

import random

import pytest
import torch
from torch import nn

from torchvet.unit.inputs import (
    CallableSource,
    FixedSource,
    GeneratedSource,
    Inputs,
    TargetSource,
    auto_target,
    infer_descriptors,
)


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


def test_perturbed_variants_keep_boolean_masks() -> None:
    mask = torch.tensor([[True, False], [True, True]])
    source = FixedSource((torch.randn(2, 2), mask), 0, "x")
    assert torch.equal(source.make(2, variant=1).args[1], mask)


def test_callable_inputs_are_seeded_per_call() -> None:
    source = CallableSource(lambda b: torch.randn(b, 4) + random.random(), seed=0)
    first = source.make(2)
    torch.rand(10)  # whatever ran in between must not matter
    random.random()
    assert torch.equal(first.args[0], source.make(2).args[0])
    assert not torch.equal(first.args[0], source.make(2, variant=1).args[0])
    assert "(batch_size)" in source.description


def test_generated_inputs_follow_their_descriptors() -> None:
    descriptors = {"args": [{"shape": (3,), "dtype": "float32"}],
                   "kwargs": {"ids": {"shape": (None,), "dtype": "int64", "low": 4, "high": 9},
                              "mask": {"shape": (5,), "dtype": "bool"},
                              "scale": {"shape": (1,), "dtype": "float64", "fill": 0.5}}}
    source = GeneratedSource(descriptors, seed=0, description="declared")
    made = source.make(2)
    assert made.args[0].shape == (2, 3) and made.args[0].dtype == torch.float32
    ids = made.kwargs["ids"]
    assert ids.shape == (2, 8) and ids.dtype == torch.int64  # None: 8 along that dim
    assert int(ids.min()) >= 4 and int(ids.max()) < 9
    assert made.kwargs["mask"].dtype == torch.bool
    assert torch.equal(made.kwargs["scale"], torch.full((2, 1), 0.5, dtype=torch.float64))
    assert torch.equal(source.make(2).args[0], made.args[0])
    assert not torch.equal(source.make(2, variant=1).args[0], made.args[0])


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


def test_no_inference_for_a_sequence_first_rnn() -> None:
    assert infer_descriptors(nn.LSTM(5, 4)) is None  # seq-first: batch is not dim 0
    assert infer_descriptors(nn.Sequential(nn.LayerNorm(4))) is None


def test_inputs_user_form() -> None:
    t = torch.zeros(2)
    assert Inputs.from_user(t).user_form() is t
    assert Inputs.from_user({"x": t}).user_form() == {"x": t}
    assert Inputs.from_user((t, t)).user_form() == (t, t)


def test_inputs_describe_their_tensors_as_users_write_them() -> None:
    inputs = Inputs.from_user({"ids": torch.zeros(2, 5, dtype=torch.long),
                               "x": torch.zeros(2, 3)})
    assert inputs.describe() == 'kwargs["ids"]: (2, 5) int64, kwargs["x"]: (2, 3) float32'
    assert inputs.batch_size() == 2
    assert Inputs.from_user(3).describe() == "no tensors"


def test_targets_follow_the_batch_size() -> None:
    fixed = TargetSource(torch.tensor([0, 1]), seed=0)
    assert fixed.make(3).tolist() == [0, 1, 0]
    drawn = TargetSource(lambda b: torch.randint(0, 5, (b,)), seed=0)
    assert drawn.make(4).shape == (4,)
    assert torch.equal(drawn.make(4), drawn.make(4))


def test_auto_targets_for_torchs_losses() -> None:
    logits = torch.randn(4, 3, 5)
    classes = auto_target(nn.CrossEntropyLoss(), logits, 0, None)
    assert classes.shape == (4, 5) and int(classes.max()) < 3 and classes.dtype == torch.int64
    assert int(auto_target(nn.NLLLoss(), logits, 0, 2).max()) < 2
    binary = auto_target(nn.BCEWithLogitsLoss(), logits, 0, None)
    assert binary.shape == logits.shape and set(binary.unique().tolist()) <= {0.0, 1.0}
    assert auto_target(nn.MSELoss(), logits, 0, None).shape == logits.shape
    assert auto_target(lambda out, target: out.sum(), logits, 0, None) is None
