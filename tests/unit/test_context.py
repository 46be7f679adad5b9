"""unit.context: what every check reads — memoised computations whose failure has one
owner, independent copies of the model, per-dtype tolerances, and the surrogate loss
that trains a model declaring none."""

from __future__ import annotations

import threading
from typing import Any

import pytest
import torch
from torch import nn

from tests.helpers.unit import make_context
from torchvet.unit.budget import BudgetExceeded
from torchvet.unit.context import CheckContext
from torchvet.unit.losses import LossProblem
from torchvet.verdict import DependencyFailed, Skip


def context(factory: Any, seed: int = 0) -> CheckContext:
    """The context of the unit ``factory()`` builds, as the worker makes it."""
    return make_context(factory, seed)


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

    for check_id in ("learning.output_vs_loss", "training.loss_at_init"):
        ctx.current_check = check_id
        with pytest.raises(DependencyFailed) as raised:
            ctx.memo("loss-capture", compute, owner="learning.output_vs_loss")
        assert str(raised.value) == "not run: the loss raised ValueError (see training.loss)"


def test_a_computation_a_budget_cut_is_not_started_again_under_a_budget_no_larger() -> None:
    """A 1.5B model's training step, cut by training.loss's 60 s budget, is not paid for
    (and cut) again by every other training check: they skip naming the first; a check
    given more time tries again, and so does a computation merely nested in the cut one."""
    ctx = context(linear)
    ctx.budgets = {"training.loss": 60, "training.update": 60, "training.overfit": 600}
    calls: list[str] = []

    def cut() -> int:
        calls.append(ctx.current_check)
        ctx.memo("inner", lambda: (_ for _ in ()).throw(BudgetExceeded(60)))
        return 1

    ctx.current_check = "training.loss"
    with pytest.raises(BudgetExceeded):
        ctx.memo("training", cut)
    ctx.current_check = "training.update"
    with pytest.raises(Skip, match=r"it shares with training.loss did not finish within "
                                   r"training.loss's 60 s budget; raise the budgets"):
        ctx.memo("training", cut)
    assert calls == ["training.loss"]
    assert ctx.memo("inner", lambda: 7) == 7  # only the outermost computation is marked
    ctx.current_check = "training.overfit"
    assert ctx.memo("training", lambda: 5) == 5


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


class ScriptedInside(nn.Module):
    """An eager model with a torch.jit.script-ed block: a deep copy of it has non-leaf
    parameters whose gradients flow back into the original."""

    def __init__(self) -> None:
        super().__init__()
        self.block = torch.jit.script(nn.Sequential(nn.Linear(4, 4), nn.ReLU()))
        self.head = nn.Linear(4, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.block(x))


def test_a_model_with_a_scripted_submodule_is_copied_from_the_factory_not_deepcopy() -> None:
    ctx = context(lambda: {"model": ScriptedInside(), "inputs": torch.randn(2, 4)})
    with torch.no_grad():  # a pristine state the factory would not rebuild by itself
        for param in ctx.model.parameters():
            param.add_(0.5)
    copy = ctx.fresh_copy()
    pristine = dict(ctx.model.named_parameters())
    for name, param in copy.named_parameters():
        assert param.is_leaf and isinstance(param, nn.Parameter), name
        assert torch.equal(param, pristine[name]), name  # the pristine state, loaded
    copy(torch.randn(2, 4)).sum().backward()
    assert all(p.grad is not None for p in copy.parameters())
    assert all(p.grad is None for p in ctx.model.parameters())


class WeightedLosses(nn.Module):
    """Multi-task uncertainty weighting: the loss's weights live on the model."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(4, 2)
        self.log_vars = nn.Parameter(torch.zeros(2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x)

    def criterion(self, out: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        losses = (out - target).pow(2).mean(0)
        return (torch.exp(-self.log_vars) * losses + self.log_vars).sum()


def test_a_loss_bound_to_the_model_trains_the_copy_s_own_parameters() -> None:
    def factory() -> dict[str, Any]:
        model = WeightedLosses()
        return {"model": model, "inputs": torch.randn(2, 4), "loss": model.criterion,
                "target": torch.randn(2, 2)}

    ctx = context(factory)
    copy = ctx.fresh_copy().train()
    loss = ctx.training_loss(copy, ctx.inputs(2), ctx.target(2))
    loss.backward()
    assert copy.log_vars.grad is not None
    assert ctx.model.log_vars.grad is None


class Counting(nn.Module):
    """Updates a buffer in every forward, eval included (a cache, a counter)."""

    calls: torch.Tensor

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(4, 2)
        self.register_buffer("calls", torch.zeros((), dtype=torch.long))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        return self.fc(x) * self.calls


def test_each_check_starts_from_the_pristine_state_whatever_ran_before() -> None:
    ctx = context(lambda: {"model": Counting(), "inputs": torch.randn(2, 4)})
    ctx.begin_check("forward.runs")
    first = ctx.eval_output()
    model = ctx.model
    model.fc.weight.requires_grad_(False)
    model.fc.bias.grad = torch.ones(2)
    ctx.call(model, ctx.inputs())  # a pass that changes the state
    ctx.begin_check("forward.determinism")
    assert int(model.calls) == 1  # as after the first eval pass, not 2
    assert model.fc.weight.requires_grad and model.fc.bias.grad is None
    assert torch.equal(ctx.call(model, ctx.inputs()), first * 2)


class ActNormLike(nn.Module):
    """A data-dependent init on the first forward (Glow's ActNorm)."""

    initialized: torch.Tensor

    def __init__(self) -> None:
        super().__init__()
        self.loc = nn.Parameter(torch.zeros(4))
        self.register_buffer("initialized", torch.tensor(0, dtype=torch.uint8))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not int(self.initialized):
            self.loc.data.copy_(-x.mean(0))
            self.initialized.fill_(1)
        return x + self.loc


def test_what_the_first_eval_forward_settles_belongs_to_the_pristine_state() -> None:
    ctx = context(lambda: {"model": ActNormLike(), "inputs": lambda b: torch.randn(b, 4)})
    ctx.begin_check("forward.batch_independence")
    assert int(ctx.model.initialized) == 1
    settled = ctx.model.loc.detach().clone()
    ctx.call(ctx.model, ctx.inputs(3, variant=1))
    assert torch.equal(ctx.model.loc, settled)  # later batches do not re-initialise


def qat_model() -> nn.Module:
    model = nn.Sequential(torch.ao.quantization.QuantStub(), nn.Linear(4, 4), nn.ReLU(),
                          torch.ao.quantization.DeQuantStub()).train()
    model.qconfig = torch.ao.quantization.get_default_qat_qconfig("x86")
    return torch.ao.quantization.prepare_qat(model)


def observer_state(model: nn.Module) -> list[torch.Tensor]:
    return [b.clone() for n, b in model.named_buffers() if n.endswith(("min_val", "max_val"))]


def test_fake_quant_observers_observe_in_train_mode_only() -> None:
    ctx = context(lambda: {"model": qat_model(), "inputs": lambda b: torch.randn(b, 4)})
    ctx.begin_check("forward.determinism")
    before = observer_state(ctx.model)
    with torch.no_grad():
        ctx.call(ctx.model.eval(), ctx.inputs(3, variant=1))
    assert all(torch.equal(a, b) for a, b in zip(before, observer_state(ctx.model),
                                                  strict=True))
    copy = ctx.fresh_copy().train()
    copy(torch.randn(3, 4))
    assert not all(torch.equal(a, b) for a, b in zip(before, observer_state(copy),
                                                      strict=True))


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
