"""unit.text: one phrasing for exceptions, dtypes, shapes and indices in every verdict,
importable without torch."""

from __future__ import annotations

import subprocess
import sys

import torch

from torchvet.unit.text import dtype_name, first_line, index_str, one_line, shape_str, unravel


def test_one_line_is_the_type_and_the_first_line_of_the_message() -> None:
    assert one_line(ValueError("bad value\n  at line 3")) == "ValueError: bad value"
    assert one_line(KeyError()) == "KeyError"
    assert one_line(RuntimeError("   \n")) == "RuntimeError"
    assert first_line(RuntimeError("  first\nsecond")) == "first"


def test_dtypes_shapes_and_indices_read_as_users_write_them() -> None:
    assert dtype_name(torch.float32) == "float32"
    assert dtype_name(torch.bfloat16) == "bfloat16"
    assert shape_str(torch.Size([2, 3])) == "(2, 3)"
    assert shape_str((4,)) == "(4,)"
    assert shape_str(()) == "()"
    assert index_str(torch.tensor([0, 3])) == "[0, 3]"


def test_importing_it_does_not_import_torch() -> None:
    code = "import sys, torchvet.unit.text; assert 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_unravel_gives_the_row_major_position_of_a_flat_index() -> None:
    shape = (2, 3, 4)
    for flat in range(24):
        expected = [int(i) for i in torch.unravel_index(torch.tensor(flat), shape)]
        assert unravel(flat, shape) == expected
