"""The benchmark's quick mode: every measurement of bench/run.py runs and is reported.

The full benchmark (5 repetitions, 20 models) is run by hand; its table lives in
bench/README.md. Here only that it runs end to end, on 3 models, once."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import ROOT

ROWS = {"torch", "lazy", "floor", "j1", "j2", "pytest", "seed1", "seed2", "help", "list",
        "s_small", "s_mid", "s_big"}


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_quick_benchmark_runs_every_measurement(tmp_path: Path) -> None:
    figures = tmp_path / "bench.json"
    proc = subprocess.run([sys.executable, str(ROOT / "bench" / "run.py"), "--quick",
                           "--json", str(figures)], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    data = json.loads(figures.read_text())
    extra = data.pop("extra")
    assert set(data) == ROWS
    assert all(len(row["samples"]) == 1 and row["samples"][0] > 0 for row in data.values())
    assert extra["help_no_torch"] and extra["list_no_torch"], "help/list imported torch"
    assert extra["floor_not_passed"] == {}
    for unit, counts in extra["floor_counts"].items():
        assert counts["build"] >= 1 and counts["forward"] >= 1 and counts["backward"] >= 1, unit
    for label in ("-j 1 / (floor + import torch)", "speed-up -j 1 / -j 2",
                  "torchvet seed-equivalent -j 1 / pytest suite", "scaling"):
        assert label in proc.stdout


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_real_tier_runs_on_a_small_stand_in(tmp_path: Path) -> None:
    """The real-size tier is opt-in (minutes, GBs); its code path runs here on one small
    model of bench/project."""
    figures = tmp_path / "real.json"
    proc = subprocess.run([sys.executable, str(ROOT / "bench" / "run.py"), "--tier", "real",
                           "--real-project", str(ROOT / "bench" / "project"), "-k", "tiny_gpt",
                           "--repeats", "1", "--json", str(figures)],
                          cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    data = json.loads(figures.read_text())
    extra = data.pop("extra")
    assert set(data) == {"torch", "floor", "j1"}
    assert extra["floor_not_passed"] == {}
    unit = extra["units"]["tiny_gpt"]
    assert unit["peak"][0] > 0 and unit["floor"][0] > 0 and unit["seconds"][0] > 0
    memory = extra["memory"]["tiny_gpt"]
    assert memory["weights"] > 0 and memory["baseline"] > 0
    assert set(memory["peaks"]) == set(extra["checks"])
    for label in ("-j 1 / (floor + import torch)", "above baseline", "seconds per check"):
        assert label in proc.stdout
