"""The JSON report round-trips, and a file that is not one says so."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers import sample_run
from torchvet.reporters import json_report
from torchvet.results import clean_run


def test_json_file_round_trip(tmp_path: Path) -> None:
    """Lossless but for what no report keeps: NUL and ANSI escapes (sample_run has both)."""
    path = tmp_path / "r.json"
    json_report.write(sample_run(), path)
    again = json_report.read(path).to_dict()
    assert again == clean_run(sample_run()).to_dict()
    assert again["reports"][0]["results"][1]["message"] == (
        'enc.weight received no gradient  <&> "q"')
    (tmp_path / "bad.json").write_text("[1, 2]")
    with pytest.raises(json_report.ReportError, match="not a torchvet JSON report"):
        json_report.read(tmp_path / "bad.json")
