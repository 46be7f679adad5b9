"""The short runs with the user's own optimizer and data: decided by step counts,
reproducible, and judged against the best constant prediction."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from tests.fixtures.corpus import learning_models as lm
from tests.fixtures.corpus.learning import pima_labels, quadratic_sgd, sine_sgd
from tests.helpers.unit import make_context
from torchvet.checks.shared import runs


def test_the_rate_run_takes_at_most_its_steps_and_reproduces() -> None:
    first = runs.rate_run(make_context(lambda: sine_sgd(0.05)))
    again = runs.rate_run(make_context(lambda: sine_sgd(0.05)))
    assert len(first.losses) <= runs.RATE_STEPS + 1
    assert first.losses == again.losses
    assert first.optimizer == "SGD(lr=0.05)" and first.declared
    assert set(first.first_update) == {"0", "2"}


def test_a_rate_that_clearly_works_ends_the_run_early() -> None:
    run = runs.rate_run(make_context(lambda: sine_sgd(0.05)))
    assert runs.RATE_SETTLED < len(run.losses) - 1 < runs.RATE_STEPS, run.losses


def test_the_shared_run_is_one_sequence_whoever_reads_it_and_however_far(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """training.overfit may grow the run before or after learning.learning_rate reads its
    first steps, and a large model replays it: the losses are the same either way."""
    alone = runs.rate_run(make_context(lambda: sine_sgd(0.05))).losses
    ctx = make_context(lambda: sine_sgd(0.05))
    longer = runs.batch_run(ctx, "declared").until(ctx, 60)
    assert longer[:len(alone)] == alone and len(longer) == 61
    assert runs.rate_run(ctx).losses == alone
    monkeypatch.setattr(runs, "KEEP_MAX_PARAMS", 0)
    ctx = make_context(lambda: sine_sgd(0.05))
    run = runs.batch_run(ctx, "declared")
    assert run.until(ctx, 5) == alone[:6]
    assert run.until(ctx, 30) == longer[:31]


def test_the_rate_run_stops_at_a_non_finite_loss_and_scales_the_rate() -> None:
    ctx = make_context(lambda: sine_sgd(10.0))
    run = runs.rate_run(ctx)
    assert not run.finite and len(run.losses) < runs.RATE_STEPS + 1
    assert runs.rate_run(ctx, 0.01).optimizer == "SGD(lr=0.1)"


def test_the_baseline_is_the_best_constant_on_the_held_out_targets() -> None:
    ctx = make_context(lambda: quadratic_sgd(0.01))
    run = runs.progress_run(ctx)
    _x, y = lm.quadratic(scale_x=True).tensors
    held_out = y[runs.pool_indices(ctx, len(y), len(y))[:run.eval_samples]]
    assert run.baseline_kind == "the mean target"
    assert math.isclose(run.baseline or 0.0, float(held_out.var(unbiased=False)), rel_tol=1e-4)


def test_a_cross_entropy_baseline_is_the_entropy_of_the_class_shares() -> None:
    def factory() -> dict[str, object]:
        return {"model": lm.mlp(4, 8, 3), "dataset": lm.iris(), "loss": nn.CrossEntropyLoss(),
                "num_classes": 3}

    ctx = make_context(factory)
    run = runs.progress_run(ctx)
    _, labels = lm.iris().tensors
    held_out = labels[runs.pool_indices(ctx, len(labels), len(labels))[:run.eval_samples]]
    shares = torch.bincount(held_out, minlength=3).double() + 0.5
    shares = shares / shares.sum()
    entropy = float(-(shares[held_out]).log().mean())
    assert run.baseline_kind == "the class frequencies"
    assert math.isclose(run.baseline or 0.0, entropy, rel_tol=1e-4)


def test_the_progress_run_stops_once_the_baseline_is_beaten_twice() -> None:
    run = runs.progress_run(make_context(lambda: pima_labels(False)))
    assert run.outcome == "beaten"
    assert all(v < run.goal for _, v in run.eval_losses[-2:])
    assert run.steps == run.eval_losses[-1][0] < runs.PROGRESS_MAX


def test_a_run_that_memorises_noise_is_told_apart() -> None:
    run = runs.progress_run(make_context(lambda: pima_labels(True)))
    assert run.outcome in ("memorising", "stuck"), run.outcome
    assert min(v for _, v in run.eval_losses) >= run.goal


def test_a_dataset_sorted_by_class_is_split_with_every_class_held_out() -> None:
    """Iris is stored sorted by species: the first rows alone are one class."""
    ctx = make_context(lambda: {"model": lm.mlp(4, 8, 3), "dataset": lm.iris(),
                                "loss": nn.CrossEntropyLoss(), "num_classes": 3})
    _, labels = lm.iris().tensors
    order = runs.pool_indices(ctx, len(labels), len(labels))
    assert sorted(order) == list(range(len(labels)))
    assert set(labels[order[:len(labels) // 4]].tolist()) == {0, 1, 2}
