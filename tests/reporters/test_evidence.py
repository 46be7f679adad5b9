"""Loss curves as evidence: sparklines for the terminal, Mermaid xychart-beta blocks for
the job summary, from CheckResult.data — never parsed out of text."""

from __future__ import annotations

from torchvet.reporters.evidence import curve_lines, curves, mermaid_charts, safe_label, sparkline


def test_a_sparkline_spans_the_curve_from_its_max_to_its_min() -> None:
    assert sparkline([4.0, 3.0, 2.0, 1.0]) == "█▆▃▁"
    assert sparkline([1.0, 1.0]) == "▁▁"
    assert sparkline([2.0, None, 1.0]) == "█!▁"
    assert sparkline([4.0, 1.0], ascii_only=True) == "#_"


def test_long_curves_are_resampled_keeping_both_ends() -> None:
    line = sparkline([float(100 - i) for i in range(100)])
    assert len(line) == 40 and line[0] == "█" and line[-1] == "▁"


def test_curve_lines_show_the_ends() -> None:
    assert curve_lines({"curves": {"Adam lr 0.01": [2.31, 1.5, 0.62]}}) == [
        "Adam lr 0.01  █▅▁  2.31 -> 0.62"]


def test_malformed_data_is_ignored() -> None:
    assert curves({"curves": {"a": "text", "b": [], "c": [1, "x"]}}) == {}
    assert curves({"table": {}}) == {} and mermaid_charts({}, "x") == ""


def test_a_mermaid_chart_per_curve_with_plain_numbers() -> None:
    text = mermaid_charts({"curves": {"your optimizer": [2804.0, 1e-7, None]}},
                          "training.overfit")
    assert text.startswith("```mermaid\nxychart-beta\n")
    assert 'title "training.overfit: your optimizer"' in text
    assert "line [2804, 0.0000001, 0.0000001]" in text
    assert 'x-axis "point" 1 --> 3' in text and "e-" not in text


def test_user_text_cannot_break_out_of_a_chart() -> None:
    label = 'Evil"]\n```\n::error::x'
    assert safe_label(label) == "Evilerrorx"
    text = mermaid_charts({"curves": {label: [1.0, 2.0]}}, "learning.learning_rate")
    assert text.count("```") == 2 and "\n::" not in text
