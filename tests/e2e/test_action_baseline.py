"""Snapshots and baselines in the action's image: `baseline: <base sha>` end to end (the
image built from the repository's Dockerfile, run the way the Actions runner runs a
container action, TESTING.md) on a fixture repository with two commits, the second
renaming a submodule: the base's snapshot is built in the container, the job summary
shows the Model changes table and the annotation lands on the changed line. And the
examples' snapshots taken on this machine compare clean under `torchvet docker`."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import ROOT
from tests.helpers.action import action_runner
from torchvet.reporters import json_report
from torchvet.results import Status

pytestmark = [pytest.mark.docker, pytest.mark.slow]

PYPROJECT = """\
[build-system]
requires = ["setuptools>=61"]
build-backend = "setuptools.build_meta"

[project]
name = "torchvet-fixture-zoo"
version = "0.1.0"
requires-python = ">=3.10"
dependencies = ["torch>=2.1"]

[project.entry-points."torchvet.models"]
net = "zoo.models:make_net"

[tool.setuptools.packages.find]
where = ["src"]

[tool.torchvet.models.net]
input_shape = [8]
"""

MODELS = """\
from torch import nn


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.encoder = nn.Sequential(nn.Linear(8, 32), nn.ReLU())
        self.head = nn.Linear(32, 4)

    def forward(self, x):
        return {"logits": self.head(self.encoder(x))}


def make_net():
    return Net()
"""


def git(root: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@example.com",
         "-c", "commit.gpgsign=false", "-c", "safe.directory=*", *args],
        cwd=root, check=True, capture_output=True, text=True).stdout


def two_commits(workspace: Path) -> tuple[str, int]:
    """The base commit's SHA and the line the pull request changed."""
    (workspace / "src" / "zoo").mkdir(parents=True)
    (workspace / "pyproject.toml").write_text(PYPROJECT)
    (workspace / "src" / "zoo" / "__init__.py").write_text("")
    models = workspace / "src" / "zoo" / "models.py"
    models.write_text(MODELS)
    git(workspace, "init", "-q")
    git(workspace, "add", "-A")
    git(workspace, "commit", "-qm", "base")
    base = git(workspace, "rev-parse", "HEAD").strip()
    models.write_text(MODELS.replace("self.encoder", "self.backbone"))
    git(workspace, "commit", "-qam", "rename the encoder")
    line = next(i for i, text in enumerate(models.read_text().splitlines(), 1)
                if "self.backbone = " in text)
    return base, line


def test_the_base_ref_is_snapshotted_in_the_container_and_the_change_shown(
        client: Any, image: str, tmp_path: Path) -> None:
    workspace = tmp_path / "workspace"
    base, line = two_commits(workspace)
    head = git(workspace, "rev-parse", "HEAD").strip()
    run = action_runner(client, image, tmp_path)(workspace, baseline=base,
                                                 checks="regression")
    code, stdout, summary, outputs = run.code, run.stdout, run.summary, run.outputs
    assert code == 1, stdout[-4000:]
    annotation = next((text for text in stdout.splitlines()
                       if text.startswith("::error file=src/zoo/models.py")
                       and "regression.signature" in text), None)
    assert annotation is not None, stdout[-4000:]
    assert annotation.startswith(f"::error file=src/zoo/models.py,line={line},")
    assert "state_dict keys renamed encoder.* → backbone.* (2 keys)" in annotation
    assert f"vs base {base[:7]}" in annotation
    assert f"### Model changes against base {base[:7]}" in summary
    assert "| net | 420 | 1.54 k | 320 | no | no ⚠️ |" in summary
    assert outputs["conclusion"] == "failure"
    assert outputs["failures"] == "net:regression.signature"
    # the workspace's git state is as the checkout left it
    assert git(workspace, "rev-parse", "HEAD").strip() == head
    assert git(workspace, "status", "--porcelain", "--untracked-files=no") == ""
    assert len(git(workspace, "worktree", "list").splitlines()) == 1


def test_snapshots_taken_here_compare_clean_in_the_image(
        image: str, torch_index: str, tmp_path: Path) -> None:
    """The examples' snapshots, taken on this machine, compare clean under
    `torchvet docker` (the image's torch, the runner's way of running it)."""
    project = tmp_path / "quickstart"
    shutil.copytree(ROOT / "examples" / "quickstart", project)
    env = {**os.environ, "NO_COLOR": "1", "TMPDIR": str(tmp_path)}
    env.pop("GITHUB_ACTIONS", None)
    taken = subprocess.run([sys.executable, "-m", "torchvet", "snapshot", str(project)],
                           env=env, capture_output=True, text=True, timeout=600, check=False)
    assert taken.returncode == 0 and "4 created" in taken.stdout, taken.stdout + taken.stderr
    report = tmp_path / "r.json"
    result = subprocess.run(
        [sys.executable, "-m", "torchvet", "docker", str(project), "--image", image,
         "--torch-index-url", torch_index, "--checks", "regression", "--json", str(report)],
        env=env, capture_output=True, text=True, timeout=900, check=False)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    run = json_report.read(report)
    verdicts = {(u.name, r.id): r.status for u, r in run.all_results()}
    assert len(verdicts) == 3 * 3 + 2  # three models, one dataset (no cost check)
    assert set(verdicts.values()) == {Status.PASSED}, verdicts
