"""checks.data.layout: a sample's containers and leaves with readable paths, and the
differences between two samples named outermost first, with their fixes."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from torchvet.checks.data.layout import (
    brief,
    difference_fix,
    differences,
    first_mismatch,
    layout,
    same_values,
    uncollatable,
    uncollatable_fix,
)


@dataclass
class Pair:
    x: torch.Tensor
    label: int


def test_leaves_have_paths_kinds_dtypes_and_shapes() -> None:
    sample = {"ids": torch.zeros(5, dtype=torch.long), "pixels": np.zeros((2, 2), np.float32),
              "meta": (1.5, "name", None), "tokens": [1, 2, 3], "pair": Pair(torch.ones(2), 1)}
    lay = layout(sample)
    described = {leaf.path: leaf.describe() for leaf in lay.leaves}
    assert described == {
        '["ids"]': "Tensor(5,) int64",
        '["meta"][0]': "float",
        '["meta"][1]': "str",
        '["meta"][2]': "NoneType",
        '["pair"].x': "Tensor(2,) float32",
        '["pair"].label': "int",
        '["pixels"]': "ndarray(2, 2) float32",
        '["tokens"]': "list of 3 int",
    }
    assert lay.containers[""] == "dict(ids, meta, pair, pixels, tokens)"
    assert layout(torch.zeros(3)).describe() == "Tensor(3,) float32"


def test_differences_are_named_outermost_first() -> None:
    reference = layout((torch.zeros(3), 0))
    assert differences(reference, layout((torch.zeros(3), 1))) == []
    shape = differences(reference, layout((torch.zeros(4), 0)))
    assert [(d.path, d.what, d.mine, d.reference) for d in shape] == [("[0]", "shape", "(4,)",
                                                                        "(3,)")]
    assert shape[0].text("dataset[1]", "dataset[0]") == (
        "dataset[1][0] has shape (4,) but dataset[0][0] has (3,)")
    dtype = differences(reference, layout((torch.zeros(3, dtype=torch.float64), 0)))
    assert dtype[0].what == "dtype" and dtype[0].mine == "Tensor(3,) float64"
    structure = differences(reference, layout((torch.zeros(3), 0, "extra")))
    assert [d.what for d in structure] == ["structure"]  # not a difference per leaf too


def test_fixes_say_how_to_make_samples_batch() -> None:
    ragged = differences(layout(torch.zeros(3)), layout(torch.zeros(4)))[0]
    assert "pad_sequence" in difference_fix(ragged, default=True)
    mixed = differences(layout(torch.zeros(3)), layout(torch.zeros(3).double()))[0]
    assert ".float()" in difference_fix(mixed, default=True)


def test_values_default_collate_cannot_batch() -> None:
    class Image:
        pass

    missing = uncollatable(layout({"x": torch.zeros(2), "mask": None}))
    assert missing is not None and missing.path == '["mask"]'
    assert "return a tensor instead" in uncollatable_fix(missing)
    opaque = uncollatable(layout((Image(), 0)))
    assert opaque is not None and "ToTensor()" in uncollatable_fix(opaque)
    assert uncollatable(layout((torch.zeros(2), 0))) is None


def test_values_compare_with_nan_equal_to_nan() -> None:
    nan = torch.tensor([float("nan"), 1.0])
    assert same_values(nan, nan.clone())
    assert not same_values(torch.zeros(2), torch.ones(2))
    assert same_values(np.array([np.nan]), np.array([np.nan]))
    assert first_mismatch((torch.zeros(2), 1), (torch.zeros(2), 1)) is None
    path, one, other = first_mismatch((torch.zeros(2), 1), (torch.zeros(2), 2)) or ("", 0, 0)
    assert (path, one, other) == ("[1]", 1, 2)
    assert brief(torch.arange(8.0)) == "Tensor(8,) float32 [0.0, 1.0, 2.0, 3.0, 4.0, 5.0]..."
