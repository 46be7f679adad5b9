"""Findings: the per-layer table, curves for the reports, and the most certain cause
first when training.overfit or learning.progress cite one."""

from __future__ import annotations

import math

from torch import nn

from tests.fixtures.corpus import learning_models as lm
from tests.fixtures.corpus.learning import titanic_head, titanic_relu_bias
from tests.helpers.unit import make_context
from torchvet.checks.causes import findings
from torchvet.checks.shared.probe import init_probe
from torchvet.results import Status


def test_the_layer_table_lists_layers_in_execution_order() -> None:
    probe = init_probe(make_context(lambda: titanic_relu_bias(-3.0)))
    table = findings.layer_table(probe)
    assert [row[0] for row in table["rows"]] == ["0", "2", "4"]
    assert [row[5] for row in table["rows"]] == [0.9688, 1.0, None]  # dead share after each
    text = findings.table_text(table)
    assert text.splitlines()[0].split() == ["layer", "type", "width", "out", "rms",
                                            "grad/weight", "dead", "saturated"]


def test_a_curve_keeps_its_ends_and_marks_non_finite_points() -> None:
    values = [float(i) for i in range(200)] + [math.inf]
    shown = findings.curve(values)
    assert len(shown) <= 62 and shown[0] == 0.0 and shown[-1] is None


def test_the_certain_cause_comes_first() -> None:
    ctx = make_context(lambda: titanic_head(nn.Softmax(dim=1), nn.BCELoss()))
    causes = findings.likely_causes(ctx)
    assert causes and causes[0].status is Status.FAILED
    assert causes[0].check == "learning.output_vs_loss"
    phrase = findings.cause_phrase(causes)
    assert phrase.startswith("; likely cause (learning.output_vs_loss): ")


def test_a_healthy_model_has_no_cause() -> None:
    def factory() -> dict[str, object]:
        return {"model": lm.mlp(6, 16, 1), "dataset": lm.titanic(),
                "loss": nn.BCEWithLogitsLoss()}

    assert findings.likely_causes(make_context(factory)) == []
    assert findings.cause_phrase([]) == ""
