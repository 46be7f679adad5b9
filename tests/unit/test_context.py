"""unit.context: what every check reads — memoised computations whose failure has one
owner, independent copies of the model, per-dtype tolerances, and the surrogate loss
that trains a model declaring none."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

from tests.helpers import ROOT
from torchvet.checks.base import DependencyFailed
from torchvet.project.config import UnitConfig
from torchvet.project.discovery import Factory
from torchvet.unit.context import CheckContext
from torchvet.unit.locate import Locator
from torchvet.unit.spec import normalize_model
from torchvet.unit.training_types import LossProblem

HERE = Path(__file__)


def context(factory: Any, seed: int = 0) -> CheckContext:
    """The context of the unit ``factory()`` builds, as the worker makes it."""
    spec = normalize_model(factory(), "net", UnitConfig(), seed)
    record = Factory(name="net", kind="model", dist="", value="tests:net", file=str(HERE),
                     line=1)
    return CheckContext(record, seed, "cpu", Locator([HERE.parent], ROOT), factory, spec)


def linear() -> dict[str, Any]:
    return {"model": nn.Linear(4, 3), "inputs": torch.randn(2, 4)}


# --------------------------------------------------------------------------- memo


def test_memo_computes_once() -> None:
    ctx = context(linear)
    calls: list[int] = []

    def compute() -> int:
        calls.append(1)
        return 42

    assert ctx.memo("answer", compute) == 42
    assert ctx.memo("answer", compute) == 42
    assert calls == [1]


def test_a_failed_computation_is_reraised_to_its_owner_and_a_skip_for_others() -> None:
    ctx = context(linear)
    error = ValueError("boom\nmore detail")

    def compute() -> int:
        raise error

    ctx.current_check = "forward.finite"
    with pytest.raises(DependencyFailed, match=r"^not run: ValueError: boom \(see forward.runs\)$"):
        ctx.memo("shared", compute, owner="forward.runs")
    ctx.current_check = "forward.runs"
    with pytest.raises(ValueError) as raised:
        ctx.memo("shared", compute, owner="forward.runs")
    assert raised.value is error  # the original exception, traceback and all
    ctx.current_check = "forward.dtype"
    with pytest.raises(DependencyFailed, match=r"\(see forward.runs\)"):
        ctx.memo("shared", compute, owner="forward.runs")


def test_without_an_owner_the_first_check_to_ask_owns_the_failure() -> None:
    ctx = context(linear)

    def compute() -> int:
        raise RuntimeError("no memory")

    ctx.current_check = "training.loss"
    with pytest.raises(RuntimeError):
        ctx.memo("run", compute)
    ctx.current_check = "training.update"
    with pytest.raises(DependencyFailed,
                       match=r"not run: RuntimeError: no memory \(see training.loss\)"):
        ctx.memo("run", compute)


def test_a_skip_inside_a_computation_is_passed_on_by_its_reason() -> None:
    ctx = context(linear)

    def compute() -> int:
        raise DependencyFailed("not run: the dataset is empty (see data.length)")

    ctx.current_check = "data.samples"
    with pytest.raises(DependencyFailed):
        ctx.memo("scan", compute)
    ctx.current_check = "data.finite"
    with pytest.raises(DependencyFailed) as raised:
        ctx.memo("scan", compute)
    assert "the dataset is empty (see data.length)" in str(raised.value)
    assert "DependencyFailed" not in str(raised.value)


def test_a_skip_raised_for_its_owner_is_the_same_skip_for_everyone() -> None:
    """A computation that cannot apply (no loss declared) is no check's failure: each
    check that asks skips with its reason, not with 'see <first asker>'."""
    ctx = context(linear)

    def compute() -> int:
        raise DependencyFailed("not run: the loss raised ValueError (see training.loss)")

    for check_id in ("forward.probabilities", "training.loss_at_init"):
        ctx.current_check = check_id
        with pytest.raises(DependencyFailed) as raised:
            ctx.memo("loss-capture", compute, owner="forward.probabilities")
        assert str(raised.value) == "not run: the loss raised ValueError (see training.loss)"


def test_each_call_gets_its_own_copy_of_the_inputs() -> None:
    """A forward that writes into its input must not change what later checks are fed."""
    ctx = context(linear)
    first = ctx.inputs().args[0]
    first.mul_(0)
    again = ctx.inputs().args[0]
    assert again is not first and bool(again.ne(0).any())


def test_training_loss_feeds_every_step_the_batch_as_it_was_made() -> None:
    class Halves(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc = nn.Linear(4, 3)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            x.mul_(0.5)
            return self.fc(x)

    ctx = context(lambda: {"model": Halves(), "inputs": torch.ones(2, 4)})
    inputs = ctx.inputs()
    losses = [float(ctx.training_loss(ctx.model, inputs, None).detach()) for _ in range(2)]
    assert losses[0] == losses[1] and bool(inputs.args[0].eq(1).all())


def test_forget_drops_memoised_results() -> None:
    ctx = context(linear)
    ctx.memo("answer", lambda: 1)
    ctx.forget()
    assert ctx.memo("answer", lambda: 2) == 2


def test_eval_output_failure_belongs_to_forward_runs() -> None:
    def broken() -> dict[str, Any]:
        return {"model": nn.Linear(4, 3), "inputs": torch.randn(2, 5)}

    ctx = context(broken)
    ctx.current_check = "forward.dtype"
    with pytest.raises(DependencyFailed, match=r"RuntimeError: .*\(see forward.runs\)"):
        ctx.eval_output()
    ctx.current_check = "forward.runs"
    with pytest.raises(RuntimeError, match="mat1 and mat2"):
        ctx.eval_output()


# --------------------------------------------------------------------------- the model


def test_fresh_copy_is_independent_of_the_pristine_model() -> None:
    ctx = context(linear)
    copy = ctx.fresh_copy()
    with torch.no_grad():
        copy.weight.add_(1.0)
    assert copy is not ctx.model
    assert not torch.equal(copy.weight, ctx.model.weight)


class HoldsALock(nn.Module):
    """deepcopy refuses a lock: the copy must come from the factory instead."""

    built = 0

    def __init__(self) -> None:
        super().__init__()
        type(self).built += 1
        self.fc = nn.Linear(4, 3)
        self.lock = threading.Lock()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x)


def test_fresh_copy_rebuilds_from_the_factory_when_deepcopy_fails(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(HoldsALock, "built", 0)
    ctx = context(lambda: {"model": HoldsALock(), "inputs": torch.randn(2, 4)})
    copy = ctx.fresh_copy()
    assert isinstance(copy, HoldsALock) and copy is not ctx.model
    assert HoldsALock.built == 2


# --------------------------------------------------------------------------- tolerances


@pytest.mark.parametrize(("dtype", "expected"), [
    (torch.float32, (1e-5, 1.3e-6)),
    (torch.float64, (1e-7, 1e-7)),
    (torch.float16, (1e-5, 1e-3)),
    (torch.bfloat16, (1e-5, 1.6e-2)),
    (torch.complex64, (1e-5, 1.3e-6)),
    (torch.int64, (0.0, 0.0)),
])
def test_tolerance_follows_assert_close_per_dtype(dtype: torch.dtype,
                                                  expected: tuple[float, float]) -> None:
    assert context(linear).tolerance(dtype) == expected


def test_cross_batch_comparisons_widen_the_tolerance() -> None:
    ctx = context(linear)
    assert ctx.tolerance(torch.float32, cross_batch=True) == (1e-5, 1e-4)
    assert ctx.tolerance(torch.bfloat16, cross_batch=True) == (1e-5, 1.6e-2)


def test_a_declared_tolerance_wins() -> None:
    ctx = context(lambda: {**linear(), "tolerance": {"atol": 0.1}})
    assert ctx.tolerance(torch.float32) == (0.1, 1.3e-6)
    assert ctx.tolerance(torch.float64, cross_batch=True) == (0.1, 1e-4)


# --------------------------------------------------------------------------- surrogate loss


def softmax_head() -> nn.Module:
    return nn.Sequential(nn.Linear(4, 3), nn.Softmax(dim=1))


def test_surrogate_gives_a_softmax_head_a_gradient_where_sum_gives_none() -> None:
    ctx = context(softmax_head)
    model = ctx.fresh_copy()
    x = torch.randn(2, 4)
    model(x).sum().backward()  # each row sums to 1: d(sum)/d(weights) is exactly 0
    assert float(model[0].weight.grad.abs().max()) < 1e-6
    model.zero_grad()
    ctx.surrogate(model(x)).backward()
    assert float(model[0].weight.grad.abs().max()) > 1e-4


def test_surrogate_is_fixed_by_the_seed_and_covers_every_floating_leaf() -> None:
    out = {"logits": torch.ones(2, 3), "aux": (torch.ones(2, 1),), "ids": torch.ones(2).long()}
    one, same, other = context(linear), context(linear), context(linear, seed=1)
    assert torch.equal(one.surrogate(out), same.surrogate(out))
    assert not torch.equal(one.surrogate(out), other.surrogate(out))
    without_aux = {"logits": out["logits"], "ids": out["ids"]}
    assert not torch.equal(one.surrogate(out), one.surrogate(without_aux))


def test_surrogate_of_an_output_without_floats_says_to_declare_a_loss() -> None:
    with pytest.raises(LossProblem, match="declare a loss or a step"):
        context(linear).surrogate((torch.ones(2).long(),))


def test_a_declared_loss_gets_a_target_that_fits_it() -> None:
    ctx = context(lambda: {**linear(), "loss": nn.CrossEntropyLoss()})
    logits = torch.randn(2, 3, requires_grad=True)
    loss = ctx.loss_of(logits, None)
    assert loss.dim() == 0 and loss.requires_grad
