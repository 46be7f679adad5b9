"""The pytest plugin's items are the checks that can apply to each unit: a model whose
table declares no dataset gets no ``data.*`` items but one ``data.*`` item that skips once
(so ``-rs`` lists one line per unit), or runs them when the spec declares a dataset."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.helpers.action import copy_fixture


def run_pytest(project: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "NO_COLOR": "1"}
    for name in ("PYTEST_ADDOPTS", "PYTEST_XDIST_WORKER"):
        env.pop(name, None)
    return subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider",
                           "--torchvet", *args], cwd=project, env=env, capture_output=True,
                          text=True, timeout=600)


def test_data_items_only_where_a_dataset_is_declared_and_one_skip_line_per_unit(
        tmp_path: Path) -> None:
    project = copy_fixture("healthy", tmp_path / "p")
    pyproject = project / "pyproject.toml"
    pyproject.write_text(pyproject.read_text(encoding="utf-8")
                         + '\n[tool.torchvet.models.classifier]\ndataset = "points"\n',
                         encoding="utf-8")
    listed = run_pytest(project, "--collect-only", "-q")
    ids = [line for line in listed.stdout.splitlines() if line.startswith("torchvet::")]
    data = sorted(i for i in ids if "::data." in i)
    assert "torchvet::mlp::data.*" in data, listed.stdout
    assert not [i for i in data if i.startswith("torchvet::mlp::data.") and
                i != "torchvet::mlp::data.*"]
    assert "torchvet::classifier::data.model_fit" in data  # declared: one item per check
    assert "torchvet::classifier::data.*" not in data
    assert "torchvet::points::data.length" in data

    ran = run_pytest(project, "-rs", "-k", "mlp and data")
    assert ran.returncode == 0, ran.stdout[-3000:]
    skips = [line for line in ran.stdout.splitlines() if line.startswith("SKIPPED")]
    assert len(skips) == 1 and "mlp declares no dataset" in skips[0], ran.stdout[-3000:]
