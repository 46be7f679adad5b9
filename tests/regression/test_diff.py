"""How two snapshots differ (torchvet.regression.diff): renames found as renames,
changes that break callers told from compatible ones, values judged at the dtype's
tolerance, cost shares and the Model changes row."""

from __future__ import annotations

import math

from torchvet.regression.diff import (
    change_row,
    cost_changes,
    diff_leaf,
    diff_signature,
    diff_values,
    find_renames,
    first_moved_module,
    flat_state,
    module_changes,
    position,
    sample_indices,
)


def state(**modules: dict[str, str]) -> dict[str, object]:
    return {"dtype": "float32", "state_dict": {k.replace("__", "."): v
                                               for k, v in modules.items()}}


def test_flat_state_expands_the_per_module_layout_with_the_common_dtype() -> None:
    sig = {"dtype": "float32", "state_dict": {
        "": {"scale": "()"}, "bn": {"weight": "8", "num_batches_tracked": "() int64"}}}
    assert flat_state(sig) == {"scale": "() float32", "bn.weight": "8 float32",
                               "bn.num_batches_tracked": "() int64"}


def test_a_renamed_submodule_is_one_rename_not_removals_and_additions() -> None:
    old = state(encoder__0={"weight": "16x8", "bias": "16"}, head={"weight": "4x16"})
    new = state(backbone__0={"weight": "16x8", "bias": "16"}, head={"weight": "4x16"})
    diff = diff_signature(old, new)
    assert [(r.old, r.new) for r in diff.renamed] == [("encoder", "backbone")]
    assert dict(diff.renamed[0].keys) == {"encoder.0.bias": "backbone.0.bias",
                                          "encoder.0.weight": "backbone.0.weight"}
    assert not diff.removed and not diff.added
    assert not diff.checkpoint_compatible
    assert "renamed encoder.* → backbone.* (2 keys)" in diff.lines()[0]


def test_renamed_blocks_win_over_block_to_block_coincidences() -> None:
    removed = {f"blocks.{i}.{p}": "8x8 float32" for i in range(3) for p in ("q", "k")}
    added = {f"layers.{i}.{p}": "8x8 float32" for i in range(3) for p in ("q", "k")}
    renames = find_renames(dict(removed), dict(added))
    assert [(r.old, r.new, len(r.keys)) for r in renames] == [("blocks", "layers", 6)]


def test_wrapping_the_model_in_a_container_is_a_rename_from_the_root() -> None:
    old = state(fc={"weight": "2x4", "bias": "2"})
    new = state(module__fc={"weight": "2x4", "bias": "2"})
    diff = diff_signature(old, new)
    assert [(r.old, r.new) for r in diff.renamed] == [("", "module")]
    assert "<root>.* → module.*" in diff.renamed[0].describe()


def test_a_key_that_changed_shape_is_no_rename() -> None:
    old = state(encoder={"weight": "16x8"})
    new = state(backbone={"weight": "32x8"})
    diff = diff_signature(old, new)
    assert not diff.renamed
    assert diff.removed == ["encoder.weight"] and diff.added == ["backbone.weight"]


def test_reshaped_and_retyped_keys_are_told_apart() -> None:
    old = state(fc={"weight": "2x4", "bias": "2"})
    new = {"dtype": "float64", "state_dict": {"fc": {"weight": "2x8 float32", "bias": "2"}}}
    diff = diff_signature(old, new)
    assert diff.reshaped == [("fc.weight", "2x4", "2x8")]
    assert diff.retyped == [("fc.bias", "float32", "float64")]
    assert not diff.checkpoint_compatible


def test_a_dtype_change_alone_keeps_checkpoints_compatible() -> None:
    old = state(fc={"weight": "2x4"})
    new = {"dtype": "float64", "state_dict": {"fc": {"weight": "2x4"}}}
    diff = diff_signature(old, new)
    assert diff.changed and diff.checkpoint_compatible


def test_output_shape_dtype_and_structure_changes_are_named() -> None:
    old = {"outputs": {'out["logits"]': "Bx10 float32", 'out["aux"]': "Bx2 float32"}}
    new = {"outputs": {'out["logits"]': "Bx12 float64", 'out["extra"]': "B float32"}}
    lines = diff_signature(old, new).outputs
    assert 'output out["aux"] removed (was Bx2 float32)' in lines
    assert 'output out["extra"] added (B float32)' in lines
    assert 'output out["logits"] shape Bx10 → Bx12' in lines
    assert 'output out["logits"] dtype float32 → float64' in lines


def test_an_optional_forward_parameter_added_is_compatible() -> None:
    assert not diff_signature({"forward": ["x"]}, {"forward": ["x", "mask=None"]}).changed


def test_forward_changes_that_break_callers_are_named() -> None:
    removed = diff_signature({"forward": ["x", "mask=None"]}, {"forward": ["x"]}).forward
    assert removed[0].startswith("forward parameter mask removed: forward(x, mask=None)")
    required = diff_signature({"forward": ["x"]}, {"forward": ["x", "y"]}).forward
    assert required[0].startswith("forward parameter y added without a default")
    moved = diff_signature({"forward": ["x", "y"]}, {"forward": ["y", "x"]}).forward
    assert moved[0].startswith("forward parameters reordered")


def test_sample_indices_and_positions() -> None:
    assert sample_indices(3) == [0, 1, 2]
    assert sample_indices(2000)[0] == 0 and sample_indices(2000)[-1] == 1999
    assert len(sample_indices(2000)) == 8
    assert position("2x1000", 1999) == "[1, 999]"
    assert position("()", 0) == "[]"


def digest(sample: list[float], **stats: float) -> dict[str, object]:
    values = {"mean": 0.0, "std": 1.0, "min": -2.0, "max": 2.0}
    values.update(stats)
    return {"shape": f"{len(sample)}", **values, "sample": sample}


def test_last_bit_noise_is_within_the_float32_tolerance() -> None:
    old = digest([0.5, -1.25, 1e-9, 2.0])
    new = digest([0.5 * (1 + 3e-7), -1.25, 2e-9, 2.0 * (1 - 2e-7)])
    assert diff_leaf("out", "float32", old, new) is None


def test_the_tolerance_follows_the_dtype() -> None:
    # a bfloat16 output that moved by a rounding step of its own (1/128 near 1) is the
    # same; that move in float32, or ten times it in bfloat16, is a change
    old, step = digest([1.0, -0.5, 0.25, 2.0]), digest([1.0078125, -0.5, 0.25, 2.0])
    assert diff_leaf("out", "bfloat16", old, step) is None
    assert diff_leaf("out", "float16", old, digest([1.0009766, -0.5, 0.25, 2.0])) is None
    assert diff_leaf("out", "float32", old, step) is not None
    assert diff_leaf("out", "bfloat16", old, digest([1.078125, -0.5, 0.25, 2.0])) is not None


def test_a_moved_value_names_the_leaf_the_element_and_both_values() -> None:
    moved = diff_leaf("out", "float32", digest([0.5, -1.25, 0.0, 2.0]),
                      digest([0.5, -0.25, 0.0, 2.0]))
    assert moved is not None
    assert moved.where == "out[1]" and math.isclose(moved.delta, 1.0)
    assert moved.describe().startswith("out moved by up to 1 at out[1] (-1.25 → -0.25")


def test_a_moved_statistic_is_caught_when_the_sample_missed_it() -> None:
    moved = diff_leaf("out", "float32", digest([0.1]), digest([0.1], max=3.0))
    assert moved is not None and moved.where == "its max"


def test_integers_compare_exactly_and_nan_matches_nan() -> None:
    assert diff_leaf("ids", "int64", digest([1, 2]), digest([1, 3])) is not None
    assert diff_leaf("out", "float32", digest(["nan", 1.0]), digest(["nan", 1.0])) is None
    assert diff_leaf("out", "float32", digest([0.0, 1.0]), digest(["nan", 1.0])) is not None


def test_a_declared_tolerance_replaces_the_default() -> None:
    old, new = digest([1.0]), digest([1.01])
    assert diff_leaf("out", "float32", old, new) is not None
    assert diff_leaf("out", "float32", old, new, {"atol": 0.1}) is None


def test_diff_values_skips_leaves_whose_shape_changed() -> None:
    old = {"a": digest([1.0, 2.0]), "b": digest([1.0])}
    new = {"a": digest([1.0]), "b": digest([5.0])}
    assert [m.leaf for m in diff_values(old, new, {"a": "float32", "b": "float32"})] == ["b"]


def module(call: int, shape: str = "2x4", **stats: float) -> dict[str, object]:
    values = {"call": call, "shape": shape, "mean": 0.0, "std": 1.0, "min": -2.0, "max": 2.0}
    return {**values, **stats}


def test_first_moved_module_follows_the_call_order() -> None:
    old = {"stem": module(0), "head": module(1)}
    assert first_moved_module(old, {"stem": module(0), "head": module(1)}, "float32") is None
    moved = {"stem": module(0, mean=0.5), "head": module(1, mean=0.7)}
    assert first_moved_module(old, moved, "float32") == "stem"
    later = {"stem": module(0), "head": module(1, max=3.0)}
    assert first_moved_module(old, later, "float32") == "head"
    reshaped = {"stem": module(0, shape="2x8"), "head": module(1, mean=0.7)}
    assert first_moved_module(old, reshaped, "float32") == "stem"


def snap(total: int, forward: int, saved: int, **by_module: int) -> dict[str, object]:
    return {"params": {"total": total, "trainable": total, "by_module": by_module},
            "measured": {"torch 2.13 / cpu": {"flops": {"forward": forward, "backward": None},
                                               "activation_bytes": saved}}}


def test_cost_changes_compare_only_figures_measured_under_the_same_key() -> None:
    old, new = snap(100, 1000, 64), snap(150, 1500, 64)
    changes = {c.what: c for c in cost_changes(old, new, "torch 2.13 / cpu")}
    assert set(changes) == {"parameters", "forward FLOPs", "activation memory (bytes)"}
    assert changes["parameters"].describe() == "parameters 100 → 150 (+50.0%)"
    other = {c.what for c in cost_changes(old, new, "torch 2.14 / cpu")}
    assert other == {"parameters"}


def test_module_changes_name_the_module_that_grew() -> None:
    old, new = snap(10, 0, 0, body=6, head=4), snap(16, 0, 0, body=12, head=4)
    assert module_changes(old, new) == [("body", 6, 12)]


def test_change_row_has_the_figures_and_checkpoint_compatibility() -> None:
    old = {**snap(100, 1000, 64), "signature": state(fc={"weight": "10x10"})}
    new = {**snap(110, 1100, 64), "signature": state(fc={"weight": "10x11"})}
    row = change_row(old, new, "torch 2.13 / cpu")
    assert row["params"] == [100, 110] and row["flops"] == [1000, 1100]
    assert row["activation_bytes"] == [64, 64]
    assert row["checkpoint_compatible"] is False
