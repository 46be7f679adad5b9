"""The issue 15 corpus (tests/fixtures/corpus/learning.py): 34 "my model does not learn"
programs, each with its fixed twin, and 25 healthy models that learn slowly or look odd.
Every buggy program must be flagged by the diagnostic that names its cause, no fixed or
healthy program may fail or warn, and the riskiest keep their verdicts under seeds 1-4.
The test runs a subset, a bug from every family with its twin (the whole corpus under
five seeds is the harness run whose table docs/checks.md shows).
"""

from __future__ import annotations

import pytest

from tests.fixtures.corpus import Case
from tests.fixtures.corpus.harness import Row, run_corpus
from tests.fixtures.corpus.learning import CASES

RIGHT_SHARE = 0.9
# a bug from every diagnostic family with its fixed twin, and the slow learners
# training.overfit used to fail: run on seed 0 (the whole corpus under five seeds is the
# harness run whose table docs/checks.md shows; it takes far longer than a test should)
SUBSET = {
    "pima_raw_features", "bars10_softmax_into_cross_entropy", "quadratic_sigmoid_output",
    "sine_sgd_lr_10", "pima_sgd_lr_1e-7", "iris_dead_relu_bias",
    "titanic_sigmoid_output_saturated", "pima_deep_sigmoid_vanishing",
    "rings_width_1_bottleneck", "pima_labels_shuffled_apart", "xor_sigmoid_net",
    "quadratic_large_targets", "iris_tiny_uniform_init", "pima_plain_sgd_slow",
}
# re-run under seeds 1-4: the verdicts most at risk of moving (a divergence, a dead
# layer, labels shuffled apart from their inputs, two slow learners)
SEED_SUBSET = {
    "pima_raw_features", "sine_sgd_lr_10", "iris_dead_relu_bias",
    "pima_labels_shuffled_apart", "xor_sigmoid_net", "pima_plain_sgd_slow",
}


def chosen(names: set[str]) -> list[Case]:
    """The cases named, with the fixed twins of the buggy ones."""
    return [c for c in CASES if c.name in names or c.twin in names]


def describe(row: Row) -> str:
    return "; ".join(f"{r.id} ({r.status.value}): {r.message[:160]}" for r in row.flags) or (
        "no flag")


@pytest.fixture(scope="module")
def seed0() -> dict[str, Row]:
    return {row.case.name: row for row in run_corpus(chosen(SUBSET), seeds=(0,))}


def test_the_corpus_is_what_the_issue_asks_for() -> None:
    bugs = [c for c in CASES if not c.healthy]
    twins = {c.twin for c in CASES if c.healthy}
    assert len(bugs) >= 30 and {c.name for c in bugs} <= twins
    assert len([c for c in CASES if c.healthy and not c.twin]) >= 15
    assert {c.name for c in CASES} >= SUBSET >= SEED_SUBSET


def test_no_fixed_or_healthy_program_fails_or_warns(seed0: dict[str, Row]) -> None:
    flagged = {name: describe(row) for name, row in seed0.items()
               if row.case.healthy and row.flags}
    assert not flagged, flagged


def test_buggy_programs_are_flagged_by_the_diagnostic_naming_their_cause(
        seed0: dict[str, Row]) -> None:
    bugs = [row for row in seed0.values() if not row.case.healthy]
    wrong = {row.case.name: describe(row) for row in bugs if not row.correct}
    assert len(bugs) - len(wrong) >= RIGHT_SHARE * len(bugs), wrong


def test_verdicts_do_not_depend_on_the_seed(seed0: dict[str, Row]) -> None:
    moved = {}
    for row in run_corpus(chosen(SEED_SUBSET), seeds=(1, 2, 3, 4)):
        first = seed0[row.case.name]
        if row.correct != first.correct or {r.id for r in row.flags} != {
                r.id for r in first.flags}:
            moved[f"{row.case.name} seed {row.seed}"] = describe(row)
    assert not moved, moved
