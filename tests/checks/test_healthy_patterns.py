"""Healthy models that do not train like a plain classifier (issue 16): every case of the
healthy-patterns corpus passes the default catalogue with no failure and no warning
under five seeds, and every buggy twin is still flagged by its check, naming the cause.

The checks issue 15 fixed (training.overfit on min-max and floor-bound losses,
training.loss_at_init on in-batch contrastive logits, the probabilities detection now in
learning.output_vs_loss) and the learning.* area are held to the same: no flag at all.
The second half tests the mechanisms that keep the patterns quiet one by one, each
against a buggy look-alike.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import torch
from torch import nn

from tests.fixtures.corpus import Case
from tests.fixtures.corpus.harness import run_case
from tests.fixtures.corpus.healthy_patterns import CASES
from tests.helpers import assert_status, verdict, vet
from torchvet.results import Status

SEEDS = range(5)
HEALTHY = [c for c in CASES if c.healthy]
BUGGY = [c for c in CASES if not c.healthy]


@pytest.fixture(autouse=True)
def one_thread() -> Iterator[None]:
    """One intra-op thread: tiny models on shared cores, reproducible timings."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def cases_by_seed(cases: list[Case]) -> list[Any]:
    return [pytest.param(case, seed, id=f"{case.name}-{seed}") for case in cases
            for seed in SEEDS]


@pytest.mark.parametrize(("case", "seed"), cases_by_seed(HEALTHY))
def test_healthy_pattern_passes_the_catalogue(case: Case, seed: int) -> None:
    row = run_case(case, seed)
    flags = {r.id: r.message for r in row.flags}
    assert not flags, f"{case.name} seed {seed}: {flags}"


@pytest.mark.parametrize(("case", "seed"), cases_by_seed(BUGGY))
def test_buggy_twin_is_flagged_by_its_check_naming_the_cause(case: Case, seed: int) -> None:
    row = run_case(case, seed)
    flags = {r.id: r.message for r in row.flags}
    assert row.named_by() is not None, (
        f"{case.name} seed {seed}: expected {case.flagged_by} naming {case.cause}, "
        f"got {flags}")
    assert not row.wrong_causes(), flags


# --------------------------------------------------------------------------- mechanisms


class Detector(nn.Module):
    """Eval output: one dict per image (torchvision detection); ``per_sample=False``
    returns a fixed number of dicts whatever the batch (a bug)."""

    def __init__(self, per_sample: bool = True) -> None:
        super().__init__()
        self.head = nn.Linear(4, 5)
        self.per_sample = per_sample

    def forward(self, x: torch.Tensor) -> list[dict[str, torch.Tensor]]:
        out = self.head(x)
        rows = out if self.per_sample else out[:1].expand(2, 5)
        return [{"boxes": row[:4].view(1, 4), "scores": row[4:]} for row in rows]


def test_a_list_of_per_sample_outputs_follows_the_batch() -> None:
    results = vet(lambda: {"model": Detector(), "inputs": lambda b: torch.randn(b, 4)},
                  ["forward.shape", "forward.batch_sizes"])
    assert_status(results["forward.shape"], Status.PASSED, "per-sample outputs")
    assert_status(results["forward.batch_sizes"], Status.PASSED, "one output per sample")


def test_a_list_whose_length_ignores_the_batch_still_fails() -> None:
    results = vet(lambda: {"model": Detector(per_sample=False),
                           "inputs": lambda b: torch.randn(b, 4)},
                  ["forward.batch_sizes"])
    assert_status(results["forward.batch_sizes"], Status.FAILED,
                  "no dim follows the batch size")


class Router(nn.Module):
    """Token routing: logits per sample and router logits per token, (batch*seq, E);
    ``fixed_tokens`` keeps a hard-coded 10 tokens (a bug)."""

    def __init__(self, fixed_tokens: bool = False) -> None:
        super().__init__()
        self.gate = nn.Linear(4, 3)
        self.head = nn.Linear(4, 2)
        self.fixed_tokens = fixed_tokens

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        tokens = x.reshape(-1, 4)
        if self.fixed_tokens:
            tokens = tokens[:10]
        return {"logits": self.head(x.mean(1)), "router_logits": self.gate(tokens)}


def test_a_leaf_of_batch_times_tokens_follows_the_batch() -> None:
    result = verdict(lambda: {"model": Router(), "inputs": lambda b: torch.randn(b, 5, 4)},
                     "forward.batch_sizes")
    assert_status(result, Status.PASSED)


def test_a_leaf_flattened_with_a_hard_coded_batch_still_fails() -> None:
    result = verdict(lambda: {"model": Router(fixed_tokens=True),
                              "inputs": lambda b: torch.randn(b, 5, 4)},
                     "forward.batch_sizes")
    assert_status(result, Status.FAILED, "router_logits", "no dim follows the batch size")


def qat_net() -> dict[str, Any]:
    model = nn.Sequential(torch.ao.quantization.QuantStub(), nn.Linear(8, 8), nn.ReLU(),
                          nn.Linear(8, 3), torch.ao.quantization.DeQuantStub()).train()
    model.qconfig = torch.ao.quantization.get_default_qat_qconfig("x86")
    torch.ao.quantization.prepare_qat(model, inplace=True)
    return {"model": model, "inputs": lambda b: torch.randn(b, 8),
            "loss": nn.CrossEntropyLoss()}


def test_fake_quant_eval_passes_are_deterministic_and_autocast_does_not_apply() -> None:
    results = vet(qat_net, ["forward.determinism", "forward.batch_independence",
                            "portability.autocast", "training.update"])
    assert_status(results["forward.determinism"], Status.PASSED)
    assert_status(results["forward.batch_independence"], Status.PASSED)
    assert_status(results["portability.autocast"], Status.SKIPPED, "fake-quant")
    assert_status(results["training.update"], Status.PASSED)


class StepNeedsAutograd(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(4, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x)


def penalty_step(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """A gradient penalty: the step differentiates inside itself (WGAN-GP)."""
    x = x.clone().requires_grad_(True)
    logits = model(x)
    grad, = torch.autograd.grad(logits.sum(), x, create_graph=True)
    return torch.nn.functional.cross_entropy(logits, torch.zeros(len(x), dtype=torch.long)) \
        + grad.pow(2).mean()


def test_the_loss_capture_runs_a_step_with_autograd_on() -> None:
    results = vet(lambda: {"model": StepNeedsAutograd(), "inputs": lambda b: torch.randn(b, 4),
                           "step": penalty_step},
                  ["learning.output_vs_loss", "training.loss_at_init"])
    assert_status(results["learning.output_vs_loss"], Status.PASSED)
    assert_status(results["training.loss_at_init"], Status.PASSED)


def test_a_step_that_cannot_run_makes_the_capture_skip_not_error() -> None:
    def broken(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
        raise ValueError("needs a tokenizer")

    result = verdict(lambda: {"model": StepNeedsAutograd(),
                              "inputs": lambda b: torch.randn(b, 4), "step": broken},
                     "learning.output_vs_loss")
    assert_status(result, Status.SKIPPED, "ValueError: needs a tokenizer", "training.loss")


class StatefulStep(nn.Module):
    """A step that changes the model's state (a running centre, as DINO's loss)."""

    center: torch.Tensor

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(4, 3)
        self.register_buffer("center", torch.zeros(3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x) - self.center

    def step(self, x: torch.Tensor) -> torch.Tensor:
        out = self(x)
        with torch.no_grad():
            self.center.add_(out.mean(0) + 1)
        return torch.nn.functional.cross_entropy(out, torch.zeros(len(x), dtype=torch.long))


def stateful() -> dict[str, Any]:
    return {"model": StatefulStep(), "inputs": lambda b: torch.randn(b, 4),
            "step": lambda model, x: model.step(x)}


def test_a_verdict_does_not_depend_on_which_checks_ran_before() -> None:
    alone = vet(stateful, ["training.loss"])["training.loss"]
    after = vet(stateful, ["learning.output_vs_loss", "training.loss_at_init",
                           "training.loss"])["training.loss"]
    assert alone.message == after.message
