"""Memory-aware execution through the CLI, in real workers: each unit's peak lands in the
JSON report, a report fed back with ``--durations`` tells the scheduler, and a run whose
memory holds no check skips them all, saying so, without a single error."""

from __future__ import annotations

import json
from pathlib import Path

from tests.helpers import EXAMPLES, run_cli

QUICKSTART = EXAMPLES / "quickstart"


def test_peaks_are_recorded_and_fed_back(tmp_path: Path) -> None:
    first, second = tmp_path / "first.json", tmp_path / "second.json"
    proc = run_cli("run", str(QUICKSTART), "-k", "mlp", "--json", str(first))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "of memory usable" in proc.stdout
    [unit] = json.loads(first.read_text())["reports"]
    assert unit["peak_memory"] > 0
    ran = [r for r in unit["results"] if r["status"] == "passed"]
    assert ran and all(r["peak_memory"] > 0 for r in ran)
    assert unit["peak_memory"] >= max(r["peak_memory"] for r in ran)
    proc = run_cli("run", str(QUICKSTART), "-k", "mlp", "--durations", str(first),
                   "--json", str(second))
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_memory_that_holds_no_check_skips_every_check_without_an_error(tmp_path: Path
                                                                       ) -> None:
    report = tmp_path / "report.json"
    proc = run_cli("run", str(QUICKSTART), "-k", "mlp,cnn", "-j", "2", "--json", str(report),
                   env={"TORCHVET_MEMORY": "512M"})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    results = [r for u in json.loads(report.read_text())["reports"] for r in u["results"]]
    assert results and {r["status"] for r in results} == {"skipped"}
    assert all(r["message"].startswith(f"skipped for memory: {r['id']} needs about")
               for r in results)
    assert "TORCHVET_MEMORY=<size> if the limit read is wrong" in results[0]["message"]
