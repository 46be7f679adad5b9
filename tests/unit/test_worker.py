"""unit.worker: ``run_check`` turns whatever a check does into one verdict (declared
skip, xfail and xpass, a budget that ran out, a dependency that failed, an exception
pointing at the project's line), and ``UnitRun`` builds the unit and speaks for it."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

from tests.fixtures import models_buggy as buggy
from tests.fixtures.models_blocking import (
    BlocksAtBatchSize,
    BlocksInTrainMode,
    block_until_the_alarm,
)
from tests.helpers import ROOT, assert_status, line_in, verdict, vet
from torchvet.checks.registry import IMPLEMENTATIONS
from torchvet.checks.suite import SUITE
from torchvet.engine import protocol
from torchvet.engine.jobs import Job
from torchvet.project.config import UnitConfig
from torchvet.project.discovery import Factory
from torchvet.results import Status
from torchvet.unit.context import CheckContext
from torchvet.unit.suite import CheckFunction
from torchvet.unit.worker import UnitRun, run_check
from torchvet.verdict import DependencyFailed, Outcome, Skip, failed, passed

HERE = Path(__file__)
CHECK = "forward.shape"  # a real catalogue id the tests lend to their own functions


def linear() -> dict[str, Any]:
    return {"model": nn.Linear(4, 2), "inputs": torch.randn(2, 4)}


def context(factory: Callable[[], Any] = linear, config: UnitConfig | None = None
            ) -> CheckContext:
    record = Factory(name="unit", kind="model", dist="", value="tests:linear",
                     file=str(HERE), line=line_in(HERE, "def linear"))
    job = Job(factory=record, config=config or UnitConfig(), project_dirs=(str(HERE.parent),),
              report_root=str(ROOT))
    return UnitRun(job, lambda message: None, SUITE, factory_fn=factory).build_context()


@pytest.fixture
def lend(monkeypatch: pytest.MonkeyPatch) -> Callable[[CheckFunction], list[str]]:
    """Register a test function under CHECK; returns the list of checks it ran for."""

    def register(func: CheckFunction) -> list[str]:
        ran: list[str] = []

        def wrapped(ctx: CheckContext) -> Outcome:
            ran.append(ctx.current_check)
            return func(ctx)

        monkeypatch.setitem(IMPLEMENTATIONS, CHECK, wrapped)
        return ran

    return register


def raise_value_error(ctx: CheckContext) -> Outcome:
    raise ValueError("a check's own bug\nsecond line")  # the line an error points at


# --------------------------------------------------------------------------- run_check


def test_declared_skip_does_not_run_the_check(lend: Any) -> None:
    ran = lend(lambda ctx: passed())
    ctx = context(lambda: {**linear(), "skip": {"forward.*": "covered elsewhere"}})
    result = run_check(CHECK, ctx, SUITE)
    assert_status(result, Status.SKIPPED, "skipped (forward.*): covered elsewhere")
    assert ran == []


def test_declared_xfail_turns_a_failure_into_xfailed(lend: Any) -> None:
    lend(lambda ctx: failed("dim 0 is wrong"))
    ctx = context(lambda: {**linear(), "xfail": {CHECK: "known, #12"}})
    assert_status(run_check(CHECK, ctx, SUITE), Status.XFAILED,
                  "xfail (known, #12): dim 0 is wrong")


def test_declared_xfail_that_passes_is_xpassed(lend: Any) -> None:
    lend(lambda ctx: passed("fine"))
    ctx = context(lambda: {**linear(), "xfail": {"forward": "tracked in #12"}})
    assert_status(run_check(CHECK, ctx, SUITE), Status.XPASSED,
                  "declared xfail (forward: tracked in #12) but it passed: remove the xfail")


def test_declared_xfail_leaves_a_skip_a_skip(lend: Any) -> None:
    def skip(ctx: CheckContext) -> Outcome:
        raise Skip("nothing to check")

    lend(skip)
    ctx = context(lambda: {**linear(), "xfail": {CHECK: "known"}})
    assert_status(run_check(CHECK, ctx, SUITE), Status.SKIPPED, "nothing to check")


def test_a_check_past_its_budget_is_stopped_and_skipped_with_the_fix(lend: Any) -> None:
    def never_ends(ctx: CheckContext) -> Outcome:
        block_until_the_alarm()
        return passed("the budget never fired")

    lend(never_ends)
    result = run_check(CHECK, context(config=UnitConfig(budgets={CHECK: 0.05})), SUITE)
    assert_status(result, Status.SKIPPED, f"{CHECK} did not finish within its 0.05 s budget",
                  f'budgets = {{ "{CHECK}" = 1 }}')


def test_a_failed_dependency_is_a_skip_naming_it(lend: Any) -> None:
    def dependent(ctx: CheckContext) -> Outcome:
        raise DependencyFailed("not run: RuntimeError: boom (see forward.runs)")

    lend(dependent)
    assert_status(run_check(CHECK, context(), SUITE), Status.SKIPPED,
                  "not run: RuntimeError: boom (see forward.runs)")


def test_an_exception_is_an_error_at_the_projects_line(lend: Any) -> None:
    lend(raise_value_error)
    result = run_check(CHECK, context(), SUITE)
    assert_status(result, Status.ERROR, f"{CHECK} raised ValueError: a check's own bug")
    assert "second line" not in result.message and "second line" in result.details
    assert result.file == "tests/unit/test_worker.py"
    assert result.line == line_in(HERE, "# the line an error points at")


def test_a_failure_without_a_line_points_at_the_model(lend: Any) -> None:
    lend(lambda ctx: failed("wrong"))
    result = run_check(CHECK, context(), SUITE)
    assert_status(result, Status.FAILED, "wrong")
    assert (result.file, result.line) == ("tests/unit/test_worker.py",
                                          line_in(HERE, "def linear"))


def test_a_pass_without_a_message_says_ok(lend: Any) -> None:
    lend(lambda ctx: passed())
    assert_status(run_check(CHECK, context(), SUITE), Status.PASSED, "ok")


def test_every_check_is_seeded_from_the_run_seed_and_its_id(lend: Any) -> None:
    draws: list[float] = []

    def draw(ctx: CheckContext) -> Outcome:
        draws.append(float(torch.rand(1)))
        return passed()

    lend(draw)
    ctx = context()
    run_check(CHECK, ctx, SUITE)
    torch.rand(100)  # whatever ran in between must not matter
    run_check(CHECK, ctx, SUITE)
    assert draws[0] == draws[1]


def test_an_unregistered_id_is_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delitem(IMPLEMENTATIONS, CHECK)
    assert_status(run_check(CHECK, context(), SUITE), Status.ERROR,
                  f"no implementation registered for {CHECK}")


# --------------------------------------------------------------------------- UnitRun


def test_declared_xfail_and_skip_on_real_checks() -> None:
    def xfail() -> dict[str, Any]:
        return {"model": buggy.DeadLayer(), "xfail": {"training.gradients": "known dead head"}}

    assert_status(verdict(xfail, "training.gradients"), Status.XFAILED, "known dead head")

    def xpass() -> dict[str, Any]:
        return {"model": nn.Linear(4, 2), "xfail": {"training.*": "tracked in #12"}}

    assert_status(verdict(xpass, "training.gradients"), Status.XPASSED, "remove the xfail")

    def skip() -> dict[str, Any]:
        return {"model": buggy.DeadLayer(), "skip": {"training": "covered elsewhere"}}

    assert_status(verdict(skip, "training.gradients"), Status.SKIPPED, "covered elsewhere")


def test_a_budget_stops_a_real_check_and_the_next_one_runs() -> None:
    config = UnitConfig(budgets={"forward.batch_sizes": 0.05})
    results = vet(BlocksAtBatchSize, ["forward.runs", "forward.batch_sizes", "forward.finite"],
                  config=config)
    assert_status(results["forward.runs"], Status.PASSED)
    assert_status(results["forward.batch_sizes"], Status.SKIPPED,
                  "did not finish within its 0.05 s budget",
                  'budgets = { "forward.batch_sizes" =')
    assert_status(results["forward.finite"], Status.PASSED)


def test_a_training_step_a_budget_cut_is_not_run_again_by_every_training_check() -> None:
    """A model too slow for its budget (a 1.5B model on 2 cores) pays for the cut step
    once: training.loss says which budget to raise, the checks sharing its step skip at
    once naming it, and one given a larger budget still tries."""
    config = UnitConfig(budgets={"training.frozen": 0.4, "training": 0.2})
    results = vet(lambda: {"model": BlocksInTrainMode(), "inputs": torch.randn(2, 4)},
                  ["training.loss", "training.gradients", "training.update", "training.frozen"],
                  config=config)
    assert_status(results["training.loss"], Status.SKIPPED,
                  "did not finish within its 0.2 s budget")
    for check_id in ("training.gradients", "training.update"):
        assert_status(results[check_id], Status.SKIPPED, "shares with training.loss did not "
                      "finish within training.loss's 0.2 s budget")
    assert_status(results["training.frozen"], Status.SKIPPED,
                  "training.frozen did not finish within its 0.4 s budget")


def test_inferred_inputs_that_do_not_fit_skip_with_instructions() -> None:
    class NeedsImages(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.norm = nn.LayerNorm(7)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.norm(x)

    results = vet(NeedsImages, ["forward.runs", "training.loss"])
    for result in results.values():
        assert_status(result, Status.SKIPPED, "cannot infer inputs",
                      "[tool.torchvet.models.", "input_shape")


def test_unknown_spec_keys_warn_by_name() -> None:
    results = vet(lambda: {"model": nn.Linear(4, 2), "outptu_shape": (2, 2)}, ["forward.runs"])
    assert_status(results["spec"], Status.WARNED, "'outptu_shape'", "did you mean 'output_shape'")


def test_a_factory_that_raises_is_an_error_for_every_check() -> None:
    def broken() -> nn.Module:
        raise RuntimeError("weights missing")  # the factory's failing line

    results = vet(broken, ["forward.runs", "training.loss"])
    for result in results.values():
        assert_status(result, Status.ERROR, "raised RuntimeError: weights missing")
        assert result.line == line_in(HERE, "# the factory's failing line")


def test_the_worker_reports_its_footprint_and_waits_for_the_grant_before_any_check() -> None:
    record = Factory(name="unit", kind="model", dist="", value="tests:linear",
                     file=str(HERE), line=line_in(HERE, "def linear"))
    job = Job(factory=record, config=UnitConfig(), checks=("forward.runs", "training.loss"),
              project_dirs=(str(HERE.parent),), report_root=str(ROOT))
    sent: list[Any] = []
    replies = iter(["not a grant", protocol.Grant(1 << 30, 2 << 30)])

    def receive() -> Any:
        sent.append("received")
        return next(replies)

    UnitRun(job, sent.append, SUITE, factory_fn=linear, receive=receive).run()
    kinds = [type(m).__name__ if not isinstance(m, str) else m for m in sent]
    assert kinds[:3] == ["Footprint", "received", "received"], kinds
    assert kinds[3:] == ["Started", "Finished", "Started", "Finished", "Done"]
    footprint, done = sent[0], sent[-1]
    assert footprint.baseline >= 0 and footprint.need > 0 and footprint.weights == 10 * 4
    results = [m.result for m in sent if isinstance(m, protocol.Finished)]
    assert {r.status for r in results} == {Status.PASSED}
    assert done.peak_memory >= max(r.peak_memory for r in results)


def test_inputs_that_do_not_fit_skip_proposing_a_shape_that_was_tried_and_ran() -> None:
    class PatchModel(nn.Module):  # a ViT: positions fixed by image_size, not by the conv
        def __init__(self) -> None:
            super().__init__()
            self.image_size, self.patch_size = 64, 16
            self.to_patches = nn.Conv2d(3, 8, 16, stride=16)
            self.pos = nn.Parameter(torch.zeros(1, 8, 4, 4))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return (self.to_patches(x) + self.pos).flatten(1)

    results = vet(PatchModel, ["forward.runs"])
    assert_status(results["forward.runs"], Status.SKIPPED, "did not fit",
                  "a float input of shape [3, 64, 64] (tried on the model) runs",
                  "input_shape = [3, 64, 64]")


def test_when_no_tried_shape_runs_the_skip_says_so_and_what_to_declare() -> None:
    class Odd(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(3, 4, 3)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.conv(x[:, :, :5, :5].reshape(-1, 3, 7, 7))

    results = vet(Odd, ["forward.runs"])
    assert_status(results["forward.runs"], Status.SKIPPED, "none of the shapes tried ran",
                  "[3, 32, 32]", "input_shape")
