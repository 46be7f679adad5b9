"""unit.optrace: replaying a forward under an op tracer finds the project line whose op
caused a verdict — each predicate on a tiny model with the bug, and silent on its
healthy twin."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from tests.helpers import ROOT, line_in
from torchvet.unit import optrace
from torchvet.unit.locate import Locator

HERE = Path(__file__)
LOCATOR = Locator([HERE.parent], ROOT)


class Net(nn.Module):
    """A linear layer followed by ``tail``: the op under test runs in this file."""

    def __init__(self, tail: Callable[[torch.Tensor], torch.Tensor], features: int = 3
                 ) -> None:
        super().__init__()
        self.fc = nn.Linear(features, features)
        self.tail = tail

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.tail(self.fc(x))


def culprit(tail: Callable[[torch.Tensor], torch.Tensor], predicate: optrace.Predicate,
            batch: int = 2) -> tuple[str, tuple[str, int]] | None:
    model = Net(tail).eval()
    x = torch.randn(batch, 3)
    return optrace.trace(lambda: model(x), predicate, LOCATOR)


def at(marker: str) -> tuple[str, int]:
    return "tests/unit/test_optrace.py", line_in(HERE, marker)


# --------------------------------------------------------------------------- the predicates


def log_of_negative(h: torch.Tensor) -> torch.Tensor:
    return torch.log(h - 100.0)  # culprit: log of negatives


def log_of_positive(h: torch.Tensor) -> torch.Tensor:
    return torch.log(F.softplus(h) + 1.0)


def test_nonfinite_from_finite() -> None:
    found = culprit(log_of_negative, optrace.nonfinite_from_finite)
    assert found == ("log() turned finite inputs into NaN/Inf", at("# culprit: log of"))
    assert culprit(log_of_positive, optrace.nonfinite_from_finite) is None


def softmax_over_masked_rows(h: torch.Tensor) -> torch.Tensor:
    scores = h.masked_fill(torch.tensor([[True] * 3, [False] * 3]), float("-inf"))
    return scores.softmax(-1)  # culprit: a row of -inf only


def softmax_over_partly_masked_rows(h: torch.Tensor) -> torch.Tensor:
    scores = h.masked_fill(torch.tensor([[True, False, False]] * 2), float("-inf"))
    return scores.softmax(-1)


def test_nan_from_nan_free_names_a_fully_masked_softmax_row() -> None:
    """-inf from a mask fill is how attention masks are written: the NaN is the bug, and
    it comes from softmax over a row with no unmasked position."""
    found = culprit(softmax_over_masked_rows, optrace.nan_from_nan_free)
    assert found is not None and found[1] == at("# culprit: a row of -inf only")
    assert "softmax() over a fully masked row" in found[0]
    assert "torch.finfo(dtype).min" in found[0]
    assert culprit(softmax_over_partly_masked_rows, optrace.nan_from_nan_free) is None


def test_inplace_into_names_the_write_into_a_watched_tensor() -> None:
    x = torch.randn(2, 3)
    other = torch.randn(2, 3)

    def run() -> None:
        other.add_(1)
        x[0].mul_(2)  # culprit: writes into a view of x
        x.clone().mul_(2)

    watched = {optrace.storage_of(x): "the caller's args[0]"}
    found = optrace.trace(run, optrace.inplace_into(watched), LOCATOR)
    assert found == ("mul_() writes into the caller's args[0] in place",
                     at("# culprit: writes into a view of x"))


def test_a_tracer_before_the_op_sees_the_op_that_raises() -> None:
    ids = torch.tensor([3])
    weight = torch.randn(3, 2)

    def beyond(name: str, args: tuple, kwargs: dict, out: object) -> str | None:
        if name == "embedding" and int(args[0].max()) >= args[1].shape[0]:
            return "id beyond the table"
        return None

    def run() -> None:
        F.embedding(ids, weight)  # culprit: raises IndexError

    assert optrace.trace(run, beyond, LOCATOR) is None  # after the op: never reached
    assert optrace.trace(run, beyond, LOCATOR, before=True) == (
        "id beyond the table", at("# culprit: raises IndexError"))


def float64_creep(h: torch.Tensor) -> torch.Tensor:
    scale = torch.ones(h.shape[1], dtype=torch.float64)
    return h * scale  # culprit: float64 creeps in


def same_dtype(h: torch.Tensor) -> torch.Tensor:
    return h * torch.ones(h.shape[1], dtype=h.dtype)


def test_dtype_changed() -> None:
    found = culprit(float64_creep, optrace.dtype_changed(torch.float32))
    assert found is not None
    assert "produced torch.float64 from torch.float32 inputs" in found[0]
    assert "mixed with a torch.float64 tensor" in found[0]
    assert found[1] == at("# culprit: float64 creeps")
    assert culprit(same_dtype, optrace.dtype_changed(torch.float32)) is None


def functional_dropout(h: torch.Tensor) -> torch.Tensor:
    return F.dropout(h, 0.5)  # culprit: training defaults to True


def noise(h: torch.Tensor) -> torch.Tensor:
    return h + 0.1 * torch.randn_like(h)  # culprit: noise in eval


def eval_dropout(h: torch.Tensor) -> torch.Tensor:
    return F.dropout(h, 0.5, training=False)


def test_random_op() -> None:
    assert culprit(functional_dropout, optrace.random_op) == (
        "dropout() ran with training=True in eval mode", at("# culprit: training defaults"))
    assert culprit(noise, optrace.random_op) == (
        "randn_like() draws random numbers in eval mode", at("# culprit: noise in eval"))
    assert culprit(eval_dropout, optrace.random_op) is None


def softmax_over_batch(h: torch.Tensor) -> torch.Tensor:
    return h.softmax(dim=0)  # culprit: across the batch


def view_moves_batch(h: torch.Tensor) -> torch.Tensor:
    return h.view(h.shape[1], h.shape[0])  # culprit: view moves the batch


def per_sample(h: torch.Tensor) -> torch.Tensor:
    return h.softmax(dim=1).view(h.shape[0], -1)


def test_batch_mixing() -> None:
    assert culprit(softmax_over_batch, optrace.batch_mixing(2)) == (
        "softmax(dim=0) reduces across the batch", at("# culprit: across the batch"))
    assert culprit(view_moves_batch, optrace.batch_mixing(2)) == (
        "view() moved the batch dimension (dim 0 2 -> 3)", at("# culprit: view moves"))
    assert culprit(per_sample, optrace.batch_mixing(2)) is None


def inplace_on_sigmoid(h: torch.Tensor) -> torch.Tensor:
    gate = torch.sigmoid(h)
    gate.add_(1.0)  # culprit: sigmoid's backward needs its output
    return gate


def inplace_on_a_sum(h: torch.Tensor) -> torch.Tensor:
    gate = torch.sigmoid(h) + 1.0
    gate.add_(1.0)
    return gate


def test_inplace_on_saved_output() -> None:
    assert culprit(inplace_on_sigmoid, optrace.inplace_on_saved_output()) == (
        "add_() modifies the output of sigmoid() in place", at("# culprit: sigmoid's"))
    assert culprit(inplace_on_a_sum, optrace.inplace_on_saved_output()) is None


def squeeze_all(h: torch.Tensor) -> torch.Tensor:
    return h[:, :1].squeeze()  # culprit: drops the batch at batch size 1


def squeeze_last(h: torch.Tensor) -> torch.Tensor:
    return h[:, :1].squeeze(-1)


def test_squeezed_batch() -> None:
    assert culprit(squeeze_all, optrace.squeezed_batch, batch=1) == (
        "squeeze() without a dim dropped the batch dimension", at("# culprit: drops the"))
    assert culprit(squeeze_last, optrace.squeezed_batch, batch=1) is None


# --------------------------------------------------------------------------- the tracer


def fails_after_the_culprit(h: torch.Tensor) -> torch.Tensor:
    h = torch.log(h - 100.0)  # culprit: before the crash
    raise RuntimeError("the forward fails later")


def test_the_culprit_survives_a_forward_that_raises() -> None:
    found = culprit(fails_after_the_culprit, optrace.nonfinite_from_finite)
    assert found == ("log() turned finite inputs into NaN/Inf", at("# culprit: before the"))


def test_ops_outside_the_project_are_not_blamed() -> None:
    elsewhere = Locator([ROOT / "examples"], ROOT)
    model = Net(log_of_negative).eval()
    x = torch.randn(2, 3)
    assert optrace.trace(lambda: model(x), optrace.nonfinite_from_finite, elsewhere) is None


def test_a_predicate_that_raises_is_a_no() -> None:
    def broken(name: str, args: tuple, kwargs: dict, out: object) -> str | None:
        raise ValueError("a predicate's own bug")

    assert culprit(log_of_negative, broken) is None


@pytest.mark.parametrize(("name", "base"), [("add_", "add"), ("add", "add"),
                                            ("__iadd__", "__iadd__"), ("_foo_", "_foo_")])
def test_base_name_of_inplace_variants(name: str, base: str) -> None:
    assert optrace.base_name(name) == base
