"""The benchmark's quick mode: every measurement of bench/run.py runs and is reported.

The full benchmark (5 repetitions, 20 models) is run by hand; its table lives in
bench/README.md. Here only that it runs end to end, on 3 models, once; and, without
running a harness, that the results files they write (``--write``) hold the command that
regenerates them and the figures."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from types import ModuleType, SimpleNamespace

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


@pytest.fixture
def bench(monkeypatch: pytest.MonkeyPatch) -> SimpleNamespace:
    """bench/'s scripts as modules (bench/ is scripts, not a package)."""
    import importlib

    monkeypatch.syspath_prepend(str(ROOT / "bench"))
    names = ("results_md", "corpus", "learning", "dlbench")
    modules: dict[str, ModuleType] = {n: importlib.import_module(n) for n in names}
    return SimpleNamespace(**modules)


def test_a_results_file_holds_its_command_machine_and_figures(tmp_path: Path,
                                                              bench: SimpleNamespace) -> None:
    results_md = bench.results_md
    table = "measurement   median s\nimport torch      3.09"
    path = results_md.write_results(
        tmp_path / "results" / "run.md", "The benchmark", ["python", "bench/run.py",
                                                          "--write", "x.md"],
        results_md.text_block(table), notes="a note")
    text = path.read_text()
    assert text.startswith("# The benchmark\n\nRegenerate with:\n\n```console\n"
                           "python bench/run.py --write x.md\n```\n")
    assert "Last written on: " in text and "torch " in text and "commit " in text
    assert "```text\n" + table + "\n```" in text and text.endswith("a note\n")


def test_a_glob_in_the_command_is_quoted(bench: SimpleNamespace) -> None:
    text = bench.results_md.render_results("t", ["python", "bench/corpus.py", "-k", "sine_*"], "",
                                     ran_on="here")
    assert "python bench/corpus.py -k 'sine_*'" in text


def _row(name: str, healthy: bool, correct: bool, *flags: str, seed: int = 0):
    results = [SimpleNamespace(id=f, status=SimpleNamespace(value="failed"), message="m")
               for f in flags]
    return SimpleNamespace(case=SimpleNamespace(name=name, healthy=healthy), seed=seed,
                           correct=correct, flags=results,
                           failures=[r for r in results if not r.id.endswith("warns")])


def test_the_corpus_report_counts_runs_and_lists_the_wrong_ones(bench: SimpleNamespace) -> None:
    rows = [_row("bug", False, True, "training.loss"),
            _row("bug", False, False, seed=1),
            _row("bug_fixed", True, True),
            _row("bug_fixed", True, False, "learning.progress", seed=1),
            _row("healthy", True, False, "learning.x_warns")]
    text = bench.corpus.report("learning", rows, "| table |")
    assert "under seeds 0, 1" in text and "| table |" in text
    assert "| buggy runs flagged by the diagnostic naming their cause | 1/2 (50 %) |" in text
    assert "| fixed and healthy runs that fail | 1/3 (33 %) |" in text
    assert "| fixed and healthy runs that warn | 1/3 (33 %) |" in text
    assert "- `bug` seed 1: no flag" in text
    assert "- `bug_fixed` seed 1: learning.progress: m" in text


def test_the_learning_cost_lists_both_medians_the_ratio_and_each_unit(
        bench: SimpleNamespace) -> None:
    text = bench.learning.render({"default": [10.0, 12.0, 11.0], "without learning": [10.0]},
                           {"mlp": 0.5, "cnn": 2.0})
    lines = text.splitlines()
    assert lines[0].startswith("default") and "median  11.00 s" in lines[0]
    assert "default / without learning: 1.100 (target <= 1.30)" in text
    assert "2.50 s over all units" in text
    assert lines[-2].split() == ["cnn", "2.00", "s"] and lines[-1].split() == ["mlp", "0.50",
                                                                              "s"]


def test_the_dlbench_table_counts_flagged_buggy_and_failing_or_warning_fixed(
        bench: SimpleNamespace) -> None:
    def unit(name: str, *results: tuple[str, str]) -> dict[str, object]:
        return {"name": name, "results": [{"id": i, "status": s} for i, s in results]}

    report = {"reports": [unit("a_buggy", ("learning.progress", "warned")),
                          unit("a_fixed", ("forward.runs", "passed")),
                          unit("b_buggy", ("forward.runs", "passed")),
                          unit("b_fixed", ("training.update", "failed")),
                          unit("c_buggy", ("training.loss", "failed")),
                          unit("c_fixed", ("learning.capacity", "warned"))]}
    manifest = {"a": {"category": "Model/Layers"}, "b": {"category": "Model/Layers"},
                "c": {"category": "Training/Loss"}}
    text = bench.dlbench.table(manifest, bench.dlbench.flags_by_model(report))
    assert "| Model/Layers | 2 | 1 | 1 | 0 |" in text
    assert "| Training/Loss | 1 | 1 | 0 | 1 |" in text
    assert "| **all** | 3 | **2/3** | 1 | 1 |" in text
    assert "| a | Model/Layers | warned: learning.progress | clean |" in text
    assert "| b | Model/Layers | clean | failed: training.update |" in text


def test_the_dlbench_harness_says_when_the_benchmark_is_absent(
        bench: SimpleNamespace, tmp_path: Path) -> None:
    assert bench.dlbench.main(["--bench", str(tmp_path)]) == 2
