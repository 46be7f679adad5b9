"""unit.memory_plan: a unit within the memory the parent granted — checks that cannot fit
are skipped saying what they need and how to get it, a large model trains in place and
comes back exactly as it was, the stateless step says so, large memos are dropped once
read."""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

from tests.helpers import ROOT, assert_status
from torchvet.checks.shared.training_run import training_trace
from torchvet.checks.suite import SUITE
from torchvet.engine import protocol
from torchvet.engine.jobs import Job
from torchvet.project.config import UnitConfig
from torchvet.project.discovery import Factory
from torchvet.results import CheckResult, Status
from torchvet.unit.context import CheckContext
from torchvet.unit.copies import named_state
from torchvet.unit.worker import UnitRun

HERE = Path(__file__)
GiB = 1 << 30
MiB = 1 << 20


def run_checks(factory: Callable[[], Any], checks: Sequence[str], grant: protocol.Grant
               ) -> tuple[CheckContext, dict[str, CheckResult]]:
    """The unit as a worker runs it after the parent granted ``grant``."""
    record = Factory(name="net", kind="model", dist="", value="tests:net", file=str(HERE),
                     line=1)
    job = Job(factory=record, config=UnitConfig(), checks=tuple(checks),
              project_dirs=(str(HERE.parent),), report_root=str(ROOT))
    unit = UnitRun(job, lambda message: None, SUITE, factory_fn=factory, receive=lambda: grant)
    ctx = unit.build_context()
    ctx.memory = unit.negotiate(ctx, probe_model=True)
    return ctx, {c: unit.measured(c, ctx) for c in unit.plan}


def wide(features: int = 8000) -> Callable[[], Any]:
    """A model whose memory is its weights (features² floats)."""
    def factory() -> dict[str, Any]:
        model = nn.Sequential(nn.Linear(features, features), nn.BatchNorm1d(features),
                              nn.Linear(features, 4))
        return {"model": model, "inputs": lambda b: torch.randn(b, features)}
    return factory


def test_checks_that_do_not_fit_the_grant_are_skipped_naming_the_memory_and_the_fix(
) -> None:
    # 64M parameters (244 MB): training needs their gradients at least, the round trip a
    # second instance; an eval forward needs next to nothing
    grant = protocol.Grant(128 * MiB, capacity=GiB, others=0)
    _, results = run_checks(wide(), ["forward.runs", "portability.device",
                                     "training.loss", "state.roundtrip"], grant)
    assert_status(results["forward.runs"], Status.PASSED)
    assert_status(results["portability.device"], Status.PASSED)
    for check_id in ("training.loss", "state.roundtrip"):
        assert_status(
            results[check_id], Status.SKIPPED, f"skipped for memory: {check_id} needs about",
            "beyond the model's 244 MB of weights, but", "is free for it (1.0 GB usable in "
            "this run); to run it: a runner with more memory, or TORCHVET_MEMORY=<size>",
            f'[tool.torchvet.models.net] skip = {{ "{check_id}" = "needs more memory" }}')
        assert "weights (parameters + buffers): 244 MB" in results[check_id].details
    assert results["forward.runs"].peak_memory > 0


def test_units_running_beside_it_are_named_with_jobs_1_as_the_fix() -> None:
    grant = protocol.Grant(128 * MiB, capacity=4 * GiB, others=3 * GiB)
    _, results = run_checks(wide(), ["training.update"], grant)
    assert_status(results["training.update"], Status.SKIPPED,
                  "(4.0 GB usable in this run, 3.0 GB of it held by the units beside it); "
                  "to run it: --jobs 1, or a runner with more memory")


def test_a_declared_skip_is_not_reported_as_a_memory_skip() -> None:
    def declared() -> dict[str, Any]:
        return {**wide()(), "skip": {"training.*": "too big for CI"}}

    _, results = run_checks(declared, ["training.loss"], protocol.Grant(MiB))
    assert_status(results["training.loss"], Status.SKIPPED, "too big for CI")


@pytest.fixture
def scratch(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    return tmp_path


def test_a_large_model_trains_in_place_and_comes_back_exactly(scratch: Path) -> None:
    pristine: dict[str, torch.Tensor] = {}

    def factory() -> dict[str, Any]:
        spec = wide(4200)()  # 17.7M parameters, 71 MB: large, but below the stateless size
        pristine.update({n: t.detach().clone() for n, t in named_state(spec["model"])})
        return spec

    ctx, results = run_checks(factory, ["training.loss", "training.gradients",
                                        "training.update", "forward.determinism"],
                              protocol.Grant(8 * GiB, 16 * GiB))
    for check_id, result in results.items():
        assert_status(result, Status.PASSED)
        assert "stateless" not in result.message, check_id
    way = ctx.memory.used_way
    assert way is not None and way.lend and way.spill and not way.stateless
    now = dict(named_state(ctx.model))
    assert set(now) == set(pristine)
    for name, value in pristine.items():
        assert torch.equal(now[name], value), f"{name} was not restored"
    assert all(p.grad is None for p in ctx.model.parameters())
    assert list(scratch.iterdir()) == [], "the saved values' file is deleted"


def test_in_place_training_still_names_a_parameter_that_gets_no_gradient(scratch: Path
                                                                        ) -> None:
    class Detached(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.body = nn.Linear(4200, 4200)
            self.side = nn.Linear(4200, 4)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.body(x)[:, :4] + self.side(x).detach()

    def factory() -> dict[str, Any]:
        return {"model": Detached(), "inputs": lambda b: torch.randn(b, 4200)}

    ctx, results = run_checks(factory, ["training.gradients"], protocol.Grant(8 * GiB))
    assert ctx.memory.used_way is not None and ctx.memory.used_way.lend
    assert_status(results["training.gradients"], Status.FAILED,
                  "side.weight, side.bias received no gradient")


def test_in_place_training_tells_the_optimizer_from_the_models_own_updates(scratch: Path
                                                                          ) -> None:
    class Averaged(nn.Module):
        """A large body and an averaged copy of its head that forward updates itself."""

        def __init__(self) -> None:
            super().__init__()
            self.body = nn.Linear(4200, 4200)
            self.head = nn.Linear(4200, 4)
            self.ema = nn.Linear(4200, 4).requires_grad_(False)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            if self.training:
                with torch.no_grad():
                    self.ema.weight.lerp_(self.head.weight, 0.5)
            return self.head(self.body(x))

    pristine: dict[str, torch.Tensor] = {}

    def factory() -> dict[str, Any]:
        model = Averaged()
        pristine.update({n: t.detach().clone() for n, t in named_state(model)})
        return {"model": model, "inputs": lambda b: torch.randn(b, 4200)}

    ctx, results = run_checks(factory, ["training.update"], protocol.Grant(8 * GiB))
    assert ctx.memory.used_way is not None and ctx.memory.used_way.lend
    assert_status(results["training.update"], Status.PASSED)
    trace = training_trace(ctx)
    assert {"body.weight", "head.weight"} <= trace.optimizer_moved
    assert "ema.weight" in trace.self_moved and "ema.weight" not in trace.optimizer_moved
    now = dict(named_state(ctx.model))
    for name, value in pristine.items():
        assert torch.equal(now[name], value), f"{name} was not restored"


def test_above_50m_parameters_the_stateless_step_replaces_adam_and_says_so(scratch: Path
                                                                          ) -> None:
    _, results = run_checks(wide(7200), ["training.update"], protocol.Grant(8 * GiB))
    assert_status(results["training.update"], Status.PASSED,
                  "every trainable parameter changed within 1 step(s) (a stateless step, "
                  "Adam's first step at every step, replaced Adam for this model's "
                  "51,890,404 trainable parameters: Adam's state would take 396 MB)")


def test_a_large_unit_drops_memos_no_later_check_reads() -> None:
    def classifier(features: int) -> Callable[[], Any]:
        def factory() -> dict[str, Any]:
            return {**wide(features)(), "loss": nn.CrossEntropyLoss(), "num_classes": 4}
        return factory

    checks = ["forward.batch_sizes", "forward.batch_independence", "learning.output_vs_loss",
              "forward.determinism"]
    large, _ = run_checks(classifier(4200), checks, protocol.Grant(8 * GiB))
    small, _ = run_checks(classifier(64), checks, protocol.Grant(8 * GiB))
    for key in ("outputs-by-size", ("eval", 3, 0), "learning-probe"):
        assert not large.computed(key), key
        assert small.computed(key), key
    assert large.computed(("eval", 2, 0)), "the standard output every check reads is kept"
