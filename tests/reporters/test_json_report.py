"""The JSON report round-trips, and a file that is not one says so."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers import sample_run
from torchvet.reporters import json_report


def test_json_file_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "r.json"
    json_report.write(sample_run(), path)
    assert json_report.read(path).to_dict() == sample_run().to_dict()
    (tmp_path / "bad.json").write_text("[1, 2]")
    with pytest.raises(json_report.ReportError, match="not a torchvet JSON report"):
        json_report.read(tmp_path / "bad.json")
