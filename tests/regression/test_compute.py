"""A unit's snapshot as its worker computes it (torchvet.regression.compute): the batch dim
found by running two sizes, exact FLOPs and saved-for-backward bytes, digests that a
rebuild reproduces, and a file small enough to review for a ResNet-50."""

from __future__ import annotations

import json
from typing import Any

import torch
from torch import nn

from tests.fixtures.models_resnet50 import resnet50
from tests.helpers.regression import snapshot_message, take_snapshot
from tests.helpers.unit import make_context
from torchvet.regression.compute import (
    digest,
    forward_parameters,
    model_cost,
    model_signature,
    model_values,
    module_digests,
    shape_text,
    state_dict_signature,
    values_key,
)
from torchvet.regression.store import dumps


def mlp() -> dict[str, Any]:
    return {"model": nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 4)),
            "inputs": torch.randn(2, 8, generator=torch.Generator().manual_seed(0))}


def test_values_are_keyed_by_torch_minor_version_and_device_type() -> None:
    major, minor = torch.__version__.split(".")[:2]
    assert values_key("cpu") == f"torch {major}.{minor} / cpu"
    assert values_key(torch.device("cuda", 1)).endswith(" / cuda")


def test_shape_text_writes_the_batch_dims_symbolically() -> None:
    assert shape_text((2, 8), (3, 8), (2, 3)) == "Bx8"
    assert shape_text((7, 2, 5), (7, 3, 5), (2, 3)) == "7xBx5"  # sequence-first
    assert shape_text((32, 4), (48, 4), (2, 3)) == "16Bx4"  # (batch * time) flattened
    assert shape_text((5,), (6,), (2, 3)) == "*"
    assert shape_text((2, 8)) == "2x8" and shape_text(()) == "()"


def test_digest_rounds_and_samples_at_fixed_positions() -> None:
    found = digest(torch.arange(20, dtype=torch.float32) / 3)
    assert found["shape"] == "20" and found["min"] == 0.0 and found["max"] == 6.3333335
    assert len(found["sample"]) == 8 and found["sample"][0] == 0.0
    assert found["sample"][-1] == 6.3333335
    assert digest(torch.tensor([3, 1, 2]))["sample"] == [3, 1, 2]
    assert digest(torch.tensor([1.0, float("nan")]))["nonfinite"] == 1
    assert digest(torch.tensor([1j, 2 + 0j]))["shape"] == "2x2"  # complex as (real, imag)
    assert digest(torch.zeros(0, 3)) == {"shape": "0x3"}


def test_forward_parameters_drop_annotations_and_unstable_defaults() -> None:
    class Model(nn.Module):
        def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None,
                    scale: float = 0.5, table: object = object(), *rest: Any,
                    **options: Any) -> torch.Tensor:
            return x

    assert forward_parameters(Model()) == ["x", "mask=None", "scale=0.5", "table=…",
                                           "*rest", "**options"]


def test_state_dict_signature_is_per_module_with_uncommon_dtypes_noted() -> None:
    grouped, common = state_dict_signature(nn.Sequential(nn.Linear(4, 2), nn.BatchNorm1d(2)))
    assert common == "float32"
    assert grouped["0"] == {"weight": "2x4", "bias": "2"}
    assert grouped["1"]["num_batches_tracked"] == "() int64"


def test_signature_finds_the_batch_dim_of_inputs_and_outputs() -> None:
    signature = model_signature(make_context(mlp))
    assert signature["inputs"] == {"args[0]": "Bx8 float32"}
    assert signature["outputs"] == {"out": "Bx4 float32"}
    assert signature["forward"] == ["input"]


def test_a_fixed_size_output_keeps_its_dims() -> None:
    class Pooled(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc = nn.Linear(8, 4)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.fc(x).sum(0)

    signature = model_signature(make_context(lambda: {"model": Pooled(),
                                                      "inputs": torch.randn(2, 8)}))
    assert signature["outputs"] == {"out": "4 float32"}


def test_flops_and_activation_bytes_are_exact() -> None:
    cost = model_cost(make_context(mlp))
    # forward: 2*B*in*out per Linear; backward: the weight grads, and the input grad of
    # the second Linear (the inputs need no gradient)
    assert cost["flops"] == {"forward": 2 * 2 * (8 * 16 + 16 * 4),
                             "backward": 2 * 2 * (8 * 16 + 2 * 16 * 4)}
    # saved for backward: the input (2x8) and the ReLU's output (2x16), float32;
    # the second Linear saves the same ReLU output (counted once), no parameter counts
    assert cost["activation_bytes"] == 4 * (2 * 8 + 2 * 16)


def test_a_model_without_a_backward_has_no_backward_cost() -> None:
    def argmax() -> dict[str, Any]:
        class ArgMax(nn.Module):
            def forward(self, x: torch.Tensor) -> torch.Tensor:
                return x.argmax(-1)
        return {"model": ArgMax(), "inputs": torch.randn(2, 8)}

    cost = model_cost(make_context(argmax))
    assert cost["flops"]["backward"] is None and cost["activation_bytes"] is None


def test_each_top_level_module_is_digested_in_call_order() -> None:
    modules = module_digests(make_context(mlp))
    assert [modules[name]["call"] for name in ("0", "1", "2")] == [0, 1, 2]
    assert modules["1"]["min"] >= 0.0  # the ReLU's output


def test_a_torchscript_child_leaves_no_module_digests_and_no_hooks() -> None:
    def partly_scripted() -> dict[str, Any]:
        return {"model": nn.Sequential(nn.Linear(8, 16), torch.jit.script(nn.Linear(16, 4))),
                "inputs": torch.randn(2, 8)}

    ctx = make_context(partly_scripted)
    values = model_values(ctx)
    assert "modules" not in values and set(values["outputs"]) == {"out"}
    assert not ctx.model[0]._forward_hooks  # the hook set before the refusal is gone


def test_two_builds_give_the_same_snapshot() -> None:
    assert take_snapshot(mlp) == take_snapshot(mlp)


def test_a_unit_that_cannot_be_built_says_why() -> None:
    def broken() -> nn.Module:
        raise RuntimeError("no weights file")

    sent = snapshot_message(broken)
    assert sent.data is None and "no weights file" in sent.error


def test_a_resnet50_snapshot_stays_under_16_kb() -> None:
    snapshot = take_snapshot(resnet50, name="resnet50")
    text = dumps(snapshot)
    assert len(text.encode()) < 16 * 1024, len(text.encode())
    assert json.loads(text) == snapshot
    assert snapshot["params"]["total"] == 25_557_032  # torchvision's resnet50
    state = snapshot["signature"]["state_dict"]
    assert sum(len(tensors) for tensors in state.values()) == 320
    assert text.count("\n") > len(state)  # a line per module: diffs show what changed
