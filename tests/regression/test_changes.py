"""The Model changes table (torchvet.regression.changes, and its place in the job
summary): figures before → after, outputs changed, checkpoint compatible, escaped; the
rows survive the JSON report the action publishes from."""

from __future__ import annotations

from torchvet.github import reporter as github
from torchvet.regression import changes
from torchvet.results import CheckResult, RunReport, Status, UnitReport

CHANGED = {"params": [420, 628], "flops": [1536, 2304], "activation_bytes": [320, 320],
           "outputs_changed": True, "checkpoint_compatible": False,
           "signature_changed": True, "baseline": "base main (1a2b3c4)"}
SAME = {"params": [420, 420], "flops": [1536, 1536], "outputs_changed": False,
        "checkpoint_compatible": True, "baseline": "base main (1a2b3c4)"}


def run() -> RunReport:
    return RunReport([
        UnitReport("wide|net", results=[CheckResult("regression.cost", Status.WARNED, "w")],
                   changes=CHANGED),
        UnitReport("same", changes=SAME),
        UnitReport("new_model"),
    ], torch_version="2.13.0")


def test_figures_show_before_after_and_the_share() -> None:
    assert changes.figure([420, 628]) == "420 → 628 (+49.5%)"
    assert changes.figure([25_557_032, 25_557_032]) == "25.6 M"
    assert changes.figure([None, 10]) == "– → 10"
    assert changes.figure(None) == "–"
    assert changes.yes_no(True, bad=True) == "yes ⚠️"
    assert changes.yes_no(True, bad=False) == "yes"
    assert changes.yes_no(None, bad=True) == "–"


def test_the_terminal_table_has_a_row_per_compared_unit() -> None:
    lines = changes.text_lines(run().reports)
    assert lines[0] == "model changes against base main (1a2b3c4):"
    assert lines[1].split()[:2] == ["Unit", "Parameters"]
    assert "420 → 628 (+49.5%)" in lines[2] and lines[2].rstrip().endswith("no ⚠️")
    assert lines[3].split()[:2] == ["same", "420"]
    assert len(lines) == 4  # new_model was not compared
    assert changes.text_lines([UnitReport("x")]) == []


def test_the_job_summary_has_the_table_escaped() -> None:
    text = github.render_summary(run())
    assert "### Model changes against base main (1a2b3c4)" in text
    assert ("| wide&#124;net | 420 → 628 (+49.5%) | 1.54 k → 2.3 k (+50.0%) | 320 | "
            "yes ⚠️ | no ⚠️ |") in text
    assert "| same | 420 | 1.54 k | – | no | yes |" in text
    assert "new_model |" not in text.split("### Model changes")[1]
    assert text.index("### Model changes") < text.index("### Problems")
    assert github.render_model_changes([UnitReport("x")]) == ""


def test_the_rows_survive_the_json_report() -> None:
    again = RunReport.from_dict(run().to_dict())
    assert [r.changes for r in again.reports] == [CHANGED, SAME, {}]
    assert "changes" not in run().reports[2].to_dict()
