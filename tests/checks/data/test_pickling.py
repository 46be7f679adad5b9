"""checks.data.pickling: the innermost value that does not pickle, by path, and what it is
with its fix."""

from __future__ import annotations

import functools
import io
import threading
from typing import Any

import torch

from torchvet.checks.data.pickling import (
    describe_culprit,
    find_unpicklable,
    pickle_problem,
    pickled_size,
)


def scale(x: torch.Tensor, factor: float) -> torch.Tensor:
    return x * factor


class Holder:
    def __init__(self, **attributes: Any) -> None:
        vars(self).update(attributes)


def test_the_innermost_culprit_is_found_by_path() -> None:
    dataset = Holder(transforms=[functools.partial(scale, factor=2.0), lambda x: x],
                     items=[1, 2, 3])
    path, culprit, owner, attr = find_unpicklable(dataset, "dataset")
    assert path == "dataset.transforms[1]" and callable(culprit)
    assert owner is dataset and attr == "transforms"  # the assignment a verdict points at


def test_culprits_are_described_with_their_fix() -> None:
    def local() -> None: ...

    assert describe_culprit(lambda: None)[0] == "a lambda"
    what, fix = describe_culprit(local)
    assert what.startswith("the function local defined inside test_culprits_are_described")
    assert "module-level function" in fix
    what, fix = describe_culprit(io.BytesIO())
    assert what == "an open _io.BytesIO" and "open it lazily" in fix
    assert describe_culprit(x for x in [])[0] == "a generator"
    assert describe_culprit(threading.Lock())[0].startswith("a _thread.")


def test_pickle_problem_names_the_first_part_that_fails() -> None:
    parts = [("the dataset", "dataset", Holder(items=[1, 2])),
             ("the collate_fn", "collate_fn", lambda batch: batch)]
    problem, size = pickle_problem(parts)
    assert problem is not None and problem.what == "the collate_fn"
    assert problem.path == "collate_fn" and size == pickled_size(parts[0][2])
    assert pickle_problem(parts[:1]) == (None, size)
