"""The pytest plugin end to end, in a subprocess as users run it: ``pytest --torchvet``
fails exactly where ``torchvet run`` does, with the same culprit text and line; -k, -x,
--junitxml and xdist behave as pytest users expect; skipped/xfailed/warned map to
pytest's own outcomes; ``[tool.torchvet] pytest = true`` turns it on without the flag;
tracebacks hide torchvet's frames unless --full-trace."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from junitparser import Error, Failure, JUnitXml, Skipped

from tests.helpers import EXAMPLES, ROOT, run_cli

pytestmark = pytest.mark.slow
BUGGY = EXAMPLES / "buggy"


def run_pytest(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "NO_COLOR": "1"}
    env.pop("PYTEST_ADDOPTS", None)
    env.pop("PYTEST_XDIST_WORKER", None)
    return subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *args],
                          cwd=cwd, env=env, capture_output=True, text=True, timeout=600)


def outcomes(path: Path) -> dict[str, tuple[str, str]]:
    """``unit::check`` -> (outcome, text) from a JUnit file pytest wrote."""
    found = {}
    for suite in JUnitXml.fromfile(str(path)):
        for case in suite:
            key = f"{case.classname.removeprefix('torchvet.')}::{case.name}"
            result = case.result[0] if case.result else None
            kind = {Failure: "failed", Error: "error", Skipped: "skipped"}.get(
                type(result), "passed")
            text = (result.message or "") + (result.text or "") if result is not None else ""
            found[key] = (kind, text)
    return found


def test_pytest_fails_where_torchvet_run_fails_with_the_same_culprits(tmp_path: Path) -> None:
    report = tmp_path / "run.json"
    run_cli("run", str(BUGGY), "--json", str(report))
    cli = [(unit["name"], r) for unit in json.loads(report.read_text())["reports"]
           for r in unit["results"]]
    bad = {f"{name}::{r['id']}": r for name, r in cli if r["status"] in ("failed", "error")}
    assert len(bad) >= 9, bad

    proc = run_pytest("--torchvet", str(BUGGY), "--junitxml", str(tmp_path / "p.xml"))
    assert proc.returncode == 1, proc.stdout[-3000:]
    seen = outcomes(tmp_path / "p.xml")
    failed = {key for key, (kind, _) in seen.items() if kind == "failed"}
    assert failed == set(bad), (failed ^ set(bad))
    for key, result in bad.items():
        text = seen[key][1]
        assert result["message"] in text, (key, text)
        assert f"at {result['file']}:{result['line']}" in text, (key, text)
    passed = {f"{n}::{r['id']}" for n, r in cli if r["status"] == "passed"}
    assert passed == {key for key, (kind, _) in seen.items() if kind == "passed"}
    assert "torchvet::unused_layer::training.gradients" in proc.stdout


def test_k_selects_items_and_x_stops_at_the_first_failure(tmp_path: Path) -> None:
    proc = run_pytest("--torchvet", str(BUGGY), "-k", "unused_layer and training",
                      "--junitxml", str(tmp_path / "k.xml"))
    seen = outcomes(tmp_path / "k.xml")
    assert seen and all(k.startswith("unused_layer::training.") for k in seen), seen
    assert seen["unused_layer::training.gradients"][0] == "failed"
    assert proc.returncode == 1

    proc = run_pytest("--torchvet", str(BUGGY), "-x", "--junitxml", str(tmp_path / "x.xml"))
    seen = outcomes(tmp_path / "x.xml")
    assert proc.returncode == 1 and "stopping after 1 failures" in proc.stdout
    assert [kind for kind, _ in seen.values()].count("failed") == 1
    units = {key.split("::")[0] for key in seen}
    assert len(units) < 9, units  # the units after the failing one never ran


def test_xdist_keeps_the_verdicts(tmp_path: Path) -> None:
    pytest.importorskip("xdist")
    report = tmp_path / "run.json"
    run_cli("run", str(BUGGY), "-k", "unused_layer,nan_output", "--json", str(report))
    expected = {f"{unit['name']}::{r['id']}" for unit in json.loads(report.read_text())["reports"]
                for r in unit["results"] if r["status"] in ("failed", "error")}
    assert {"unused_layer::training.gradients", "nan_output::forward.finite"} <= expected
    proc = run_pytest("--torchvet", str(BUGGY), "-n", "2", "--dist", "loadgroup",
                      "-k", "unused_layer or nan_output", "--junitxml", str(tmp_path / "n.xml"))
    seen = outcomes(tmp_path / "n.xml")
    assert proc.returncode == 1, proc.stdout[-2000:]
    assert {key for key, (kind, _) in seen.items() if kind == "failed"} == expected


MODELS = '''\
import torch
from torch import nn


class Probabilities(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 3)

    def forward(self, x):
        return torch.softmax(self.fc(x), dim=-1)


class Unused(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 2)
        self.spare = nn.Linear(2, 2)

    def forward(self, x):
        return self.fc(x)


class Raises(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 2)

    def forward(self, x):
        return self.fc(x).view(3, -1)


def probabilities():
    return {"model": Probabilities(), "loss": nn.CrossEntropyLoss()}


def known_bug():
    return {"model": Unused(), "xfail": {"training.gradients": "spare head, issue 7"}}


def raises():
    return {"model": Raises(), "inputs": torch.randn(2, 4)}
'''


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("plugin")
    (root / "pkg").mkdir()
    (root / "pkg" / "__init__.py").write_text("")
    (root / "pkg" / "models.py").write_text(MODELS)
    (root / "pyproject.toml").write_text(textwrap.dedent("""\
        [project]
        name = "plugin-demo"
        version = "0"
        [project.entry-points."torchvet.models"]
        probabilities = "pkg.models:probabilities"
        known_bug = "pkg.models:known_bug"
        raises = "pkg.models:raises"
        [tool.torchvet]
        pytest = true
        checks = ["forward", "training.gradients"]
        """))
    return root


def test_outcomes_map_and_the_config_key_turns_the_plugin_on(project: Path) -> None:
    proc = run_pytest("-rxs", "-k", "probabilities or known_bug or forward.runs",
                      "--junitxml", "out.xml", cwd=project)
    seen = outcomes(project / "out.xml")
    assert seen["known_bug::training.gradients"][0] == "skipped"  # xfail, as junit sees it
    assert "XFAIL torchvet::known_bug::training.gradients" in proc.stdout
    assert seen["probabilities::forward.probabilities"][0] == "passed"
    assert "TorchvetWarning" in proc.stdout and "is fed probabilities" in proc.stdout
    assert seen["raises::forward.runs"][0] == "failed"
    text = seen["raises::forward.runs"][1]
    assert "(torchvet frames hidden; --full-trace shows them)" in text
    assert "torchvet/checks/forward.py" not in text and "pkg/models.py" in text
    assert proc.returncode == 1, proc.stdout[-2000:]


def test_warnings_fail_under_w_error_and_full_trace_shows_torchvet(project: Path) -> None:
    proc = run_pytest("-W", "error::torchvet.pytest_plugin.TorchvetWarning", "--full-trace",
                      "-k", "probabilities or raises", "--junitxml", "w.xml", cwd=project)
    seen = outcomes(project / "w.xml")
    assert seen["probabilities::forward.probabilities"][0] == "failed"
    text = seen["raises::forward.runs"][1]
    assert re.search(r"runner/torchvet/(unit|checks)/\w+\.py", text), text
    assert "frames hidden" not in text
    assert proc.returncode == 1


def test_torchvet_run_full_trace_matches(project: Path, tmp_path: Path) -> None:
    for flag, hidden in (((), True), (("--full-trace",), False)):
        out = tmp_path / "r.json"
        run_cli("run", str(project), "-k", "raises", "--checks", "forward.runs", *flag,
                "--json", str(out))
        [unit] = json.loads(out.read_text())["reports"]
        details = unit["results"][0]["details"]
        assert ("frames hidden" in details) is hidden, details
        assert ("torchvet/checks/forward.py" in details) is not hidden, details


def test_without_the_flag_or_the_key_nothing_is_added(tmp_path: Path) -> None:
    proc = run_pytest(str(BUGGY), "--collect-only", "-q")
    assert "torchvet::" not in proc.stdout and proc.returncode == 5, proc.stdout
