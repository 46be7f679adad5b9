"""What `torchvet snapshot` does with an existing file (torchvet.regression.update):
create, add a torch/device key, leave alone within tolerance, report a difference, and
with --update rewrite without churning numbers that still hold."""

from __future__ import annotations

import copy
from typing import Any

from torchvet.regression.update import ADDED, CREATED, DIFFERS, UNCHANGED, UPDATED, decide

KEY = "torch 2.13 / cpu"


def snapshot(value: float = 0.5, width: int = 4, key: str = KEY) -> dict[str, Any]:
    return {
        "torchvet_snapshot": 1, "unit": "net", "kind": "model", "seed": 0,
        "signature": {"outputs": {"out": "Bx2 float32"}, "dtype": "float32",
                      "state_dict": {"fc": {"weight": f"2x{width}"}}},
        "params": {"total": 2 * width, "trainable": 2 * width, "by_module": {"fc": 2 * width}},
        "measured": {key: {
            "flops": {"forward": 4 * width, "backward": 8 * width}, "activation_bytes": 32,
            "outputs": {"out": {"shape": "2x2", "mean": value, "std": 1.0, "min": -1.0,
                                "max": 1.0, "sample": [value, -value]}},
        }},
    }


def test_no_file_is_created() -> None:
    decision = decide(None, snapshot(), update=False)
    assert decision.action == CREATED and decision.snapshot == snapshot()


def test_the_same_snapshot_leaves_the_file_alone_even_with_last_bit_noise() -> None:
    assert decide(snapshot(), snapshot(0.5 * (1 + 1e-7)), update=True).action == UNCHANGED


def test_a_new_torch_version_is_added_under_its_own_key_without_touching_the_rest() -> None:
    old = snapshot()
    decision = decide(old, snapshot(0.7, key="torch 2.14 / cpu"), update=False)
    assert decision.action == ADDED
    assert decision.snapshot is not None
    assert decision.snapshot["measured"][KEY] == old["measured"][KEY]
    assert decision.snapshot["measured"]["torch 2.14 / cpu"]["outputs"]["out"]["mean"] == 0.7
    assert decision.notes == ["added the values for torch 2.14 / cpu"]


def test_a_difference_is_reported_and_the_file_left_alone_without_update() -> None:
    decision = decide(snapshot(), snapshot(0.9), update=False)
    assert decision.action == DIFFERS and decision.snapshot is None
    assert decision.differences[0].startswith("out moved by up to 0.4 at")


def test_update_rewrites_and_drops_the_values_of_other_keys() -> None:
    old = snapshot()
    old["measured"]["torch 2.12 / cpu"] = copy.deepcopy(old["measured"][KEY])
    decision = decide(old, snapshot(0.9), update=True)
    assert decision.action == UPDATED and decision.snapshot is not None
    assert list(decision.snapshot["measured"]) == [KEY]
    assert decision.snapshot["measured"][KEY]["outputs"]["out"]["mean"] == 0.9
    assert "dropped the values for torch 2.12 / cpu" in decision.notes[0]


def test_update_of_a_cost_change_keeps_the_values_that_still_hold() -> None:
    old = snapshot()
    new = snapshot(0.5 * (1 + 1e-7), width=8)
    decision = decide(old, new, update=True)
    assert decision.action == UPDATED and decision.snapshot is not None
    measured = decision.snapshot["measured"][KEY]
    assert measured["outputs"] == old["measured"][KEY]["outputs"]  # not rewritten
    assert measured["flops"] == {"forward": 32, "backward": 64}
    assert "parameters 8 → 16 (+100.0%)" in decision.differences
