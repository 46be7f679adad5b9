"""Snapshot files (torchvet.regression.store): where a unit's file lives, a layout made
for review (one line per output leaf, state_dict module and measured output), and every
way a file can be unusable named with its fix."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from torchvet.regression.store import (
    SnapshotError,
    dumps,
    file_name,
    load_baselines,
    read,
    snapshot_path,
    write,
)

SNAPSHOT = {
    "torchvet_snapshot": 1, "unit": "net", "kind": "model", "seed": 0,
    "signature": {
        "forward": ["x"], "inputs": {"args[0]": "Bx8 float32"},
        "outputs": {"out": "Bx4 float32"}, "dtype": "float32",
        "state_dict": {"layer10": {"weight": "4x4"}, "layer2": {"weight": "4x8", "bias": "4"}},
    },
    "params": {"total": 52, "trainable": 52, "by_module": {"layer2": 36, "layer10": 16}},
    "measured": {"torch 2.13 / cpu": {
        "flops": {"forward": 128, "backward": 256}, "activation_bytes": 96,
        "inputs": {"args[0]": {"shape": "2x8", "mean": 0.1, "sample": [0.5, -0.25]}},
        "outputs": {"out": {"shape": "2x4", "mean": -0.5, "sample": [1.0]}},
    }},
}


def test_file_names_keep_models_and_datasets_apart_and_escape_odd_names() -> None:
    assert file_name("model", "resnet50") == "resnet50.json"
    assert file_name("dataset", "resnet50") == "datasets/resnet50.json"
    assert file_name("model", "a/b") == "a%2Fb.json"
    assert file_name("model", "..") == "%2E..json"
    assert snapshot_path("/p/.torchvet/snapshots", "model", "x").as_posix() == \
        "/p/.torchvet/snapshots/x.json"


def test_the_layout_is_one_line_per_module_and_per_leaf_in_reading_order() -> None:
    text = dumps(SNAPSHOT)
    assert json.loads(text) == SNAPSHOT
    lines = text.splitlines()
    keys = [line.strip().split(":")[0] for line in lines if line.startswith('  "')
            and not line.startswith('   ')]
    assert keys == ['"torchvet_snapshot"', '"unit"', '"kind"', '"seed"', '"signature"',
                    '"params"', '"measured"']
    layer2 = '      "layer2": {"bias": "4", "weight": "4x8"},'
    assert lines.index(layer2) < lines.index('      "layer10": {"weight": "4x4"}')
    assert '        "out": {"shape": "2x4", "mean": -0.5, "sample": [1.0]}' in lines
    assert dumps(SNAPSHOT) == text  # stable


def test_write_replaces_a_symlink_instead_of_writing_through_it(tmp_path: Path) -> None:
    target = tmp_path / "elsewhere.txt"
    target.write_text("keep")
    link = tmp_path / "snaps" / "net.json"
    link.parent.mkdir()
    link.symlink_to(target)
    size = write(link, SNAPSHOT)
    assert target.read_text() == "keep"
    assert not link.is_symlink() and size == len(link.read_bytes())
    assert read(link, "model", "net") == SNAPSHOT


def test_a_missing_file_reads_as_none_and_its_baseline_says_how_to_create_it(
        tmp_path: Path) -> None:
    assert read(tmp_path / "net.json", "model", "net") is None
    found = load_baselines(tmp_path / ".torchvet" / "snapshots", [("model", "net")],
                           root=tmp_path)
    baseline = found[("model", "net")]
    assert baseline.snapshot is None
    assert baseline.missing == ("no snapshot .torchvet/snapshots/net.json: create it with "
                                "`torchvet snapshot`")


@pytest.mark.parametrize(("text", "fragment"), [
    ("<<<<<<< HEAD\n{}\n=======\n", "not a JSON snapshot (a merge conflict?)"),
    ('{"unit": "net"}', "not a torchvet snapshot"),
    ('{"torchvet_snapshot": 9, "unit": "net", "kind": "model"}', "this torchvet reads format 1"),
    ('{"torchvet_snapshot": 1, "unit": "other", "kind": "model"}', "not of model 'net'"),
])
def test_an_unusable_file_is_a_usage_error_naming_it(tmp_path: Path, text: str,
                                                      fragment: str) -> None:
    path = tmp_path / "net.json"
    path.write_text(text)
    with pytest.raises(SnapshotError) as caught:
        read(path, "model", "net")
    assert str(caught.value).startswith(str(path)) and fragment in str(caught.value)
