"""The real-architecture suite: every default check passes on every model — no failure,
no error, no warning — and the only skips are the loss-dependent checks of models that
declare no loss."""

from __future__ import annotations

import pytest

from tests.fixtures.models_real import REAL_MODELS
from tests.helpers import vet
from torchvet.checks.catalogue import select
from torchvet.results import Status

NEEDS_LOSS = {"training.overfit", "training.loss_at_init", "training.loss_sanity",
              "learning.output_vs_loss", "learning.learning_rate", "learning.progress"}
# without a snapshot the regression checks skip saying how to create one; compared with
# their own snapshot they pass (tests/checks/test_regression.py)
NEEDS_SNAPSHOT = {"regression.signature", "regression.outputs", "regression.cost"}


@pytest.mark.parametrize("name", sorted(REAL_MODELS))
def test_every_default_check_passes(name: str) -> None:
    results = vet(REAL_MODELS[name])
    has_data = any(cid.startswith("data.") for cid in results)
    expected = {m.id for m in select("model", has_data=has_data)}
    assert expected <= set(results), expected - set(results)
    problems = {cid: f"{r.status.value}: {r.message}" for cid, r in results.items()
                if r.status not in (Status.PASSED, Status.SKIPPED)}
    assert not problems, problems
    skipped = {cid: r.message for cid, r in results.items() if r.status is Status.SKIPPED
               and cid not in NEEDS_SNAPSHOT}
    assert all("create it with `torchvet snapshot`" in results[cid].message
               for cid in NEEDS_SNAPSHOT), results
    assert set(skipped) <= NEEDS_LOSS, skipped
    # learning.learning_rate judges a rate the user chose: none is declared here
    assert all("no loss or step declared" in m or (
        cid == "learning.learning_rate" and "no optimizer declared" in m)
        for cid, m in skipped.items()), skipped
