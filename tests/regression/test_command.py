"""Baselines and `torchvet snapshot` end to end (torchvet.regression.command), on fixture git
repositories: a base commit with its committed snapshot, then the change a pull request
makes. Each change is judged the same way against the committed snapshot and against
the base ref built on the fly, and `torchvet snapshot --update` accepts it."""

from __future__ import annotations

import json
import shutil
import subprocess
import textwrap
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import EXAMPLES, run_cli
from tests.helpers.workflow import replay_log
from torchvet import cli
from torchvet.results import Status

pytestmark = pytest.mark.slow

PYPROJECT = """\
[project]
name = "zoo"
version = "0"

[project.entry-points."torchvet.models"]
net = "zoo.models:make_net"

[tool.torchvet.models.net]
input_shape = [8]
"""

MODELS = """\
from torch import nn


class Net(nn.Module):
    def __init__(self, hidden=32):
        super().__init__()
        self.encoder = nn.Sequential(nn.Linear(8, hidden), nn.ReLU())
        self.head = nn.Linear(hidden, 4)

    def forward(self, x):
        return {"logits": self.head(self.encoder(x))}


def make_net():
    return Net()
"""

# name: (edit of MODELS, the check that flags it, its status, fragments, marker of its line)
CHANGES: dict[str, tuple[tuple[str, str], str, Status, tuple[str, ...], str]] = {
    "refactor": (("return {\"logits\": self.head(self.encoder(x))}",
                  "features = self.encoder(x)  # the same computation\n"
                  "        return {\"logits\": self.head(features)}"),
                 "", Status.PASSED, (), ""),
    "activation": (("nn.ReLU()", "nn.GELU()"), "regression.outputs", Status.FAILED,
                   ('output out["logits"] moved by up to', "first at the output of encoder"),
                   "self.encoder = "),
    "rename": (("self.encoder", "self.backbone"), "regression.signature", Status.FAILED,
               ("state_dict keys renamed encoder.* → backbone.* (2 keys)",
                "encoder.0.bias → backbone.0.bias", "checkpoints saved before this change "
                "will not load"), "self.backbone = "),
    "widen": (("hidden=32", "hidden=48"), "regression.cost", Status.WARNED,
              ("parameters 420 → 628 (+49.5%)", "forward FLOPs 1.54 k → 2.3 k (+50.0%)",
               "encoder: 288 → 432 parameters"), "self.encoder = "),
}


def git(root: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@example.com",
         "-c", "commit.gpgsign=false", *args],
        cwd=root, check=True, capture_output=True, text=True).stdout


def torchvet(*args: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    capsys.readouterr()
    code = cli.main(list(args))
    return code, capsys.readouterr().out


def regression(root: Path, capsys: pytest.CaptureFixture[str], *extra: str
               ) -> dict[str, Any]:
    report = root.parent / "run.json"
    code, out = torchvet("run", str(root), "--checks", "regression", "-j", "1",
                         "--json", str(report), *extra, capsys=capsys)
    assert code in (0, 1), out
    data = json.loads(report.read_text())
    (unit,) = data["reports"]
    return {r["id"]: r for r in unit["results"]} | {"changes": unit.get("changes", {}),
                                                   "out": out}


@pytest.fixture
def repo(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Path:
    root = tmp_path / "zoo"
    (root / "src" / "zoo").mkdir(parents=True)
    (root / "pyproject.toml").write_text(PYPROJECT)
    (root / "src" / "zoo" / "__init__.py").write_text("")
    (root / "src" / "zoo" / "models.py").write_text(MODELS)
    code, out = torchvet("snapshot", str(root), capsys=capsys)
    assert code == 0 and "created    net  .torchvet/snapshots/net.json" in out, out
    git(root, "init", "-q")
    git(root, "add", "-A")
    git(root, "commit", "-qm", "base, with its snapshot")
    return root


def change(root: Path, old: str, new: str) -> int:
    """Make the change and commit it; the line of the changed code."""
    path = root / "src" / "zoo" / "models.py"
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new))
    git(root, "commit", "-qam", "the pull request")
    return 0


def line_of(root: Path, marker: str) -> int:
    lines = (root / "src" / "zoo" / "models.py").read_text().splitlines()
    return next(i for i, line in enumerate(lines, 1) if marker in line)


@pytest.mark.parametrize("name", sorted(CHANGES))
def test_a_change_is_judged_alike_against_the_snapshot_and_the_base_ref_then_accepted(
        repo: Path, capsys: pytest.CaptureFixture[str], name: str) -> None:
    (old, new), check, status, fragments, marker = CHANGES[name]
    change(repo, old, new)
    for baseline, source in (([], ".torchvet/snapshots/net.json"),
                             (["--baseline", "HEAD~1"], "base HEAD~1 (")):
        results = regression(repo, capsys, *baseline)
        flagged = {cid: r["status"] for cid, r in results.items()
                   if cid.startswith("regression.") and r["status"] != "passed"}
        if status is Status.PASSED:
            assert not flagged, results["out"]
            continue
        verdict = results[check]
        assert verdict["status"] == status.value, verdict
        for fragment in (*fragments, f"vs {source}",
                         "if intended, accept it with `torchvet snapshot --update`"):
            assert fragment in verdict["message"], (fragment, verdict["message"])
        assert verdict["file"] == "src/zoo/models.py"
        assert verdict["line"] == line_of(repo, marker)
        short = git(repo, "rev-parse", "HEAD~1")[:7]
        assert results["changes"]["baseline"] in (".torchvet/snapshots", f"base HEAD~1 ({short})")
    code, out = torchvet("snapshot", str(repo), capsys=capsys)
    if status is Status.PASSED:
        assert code == 0 and "unchanged  net" in out, out
        return
    assert code == 1 and "differs    net  .torchvet/snapshots/net.json: " in out, out
    assert "accept it with `torchvet snapshot --update -k net`" in out
    code, out = torchvet("snapshot", str(repo), "--update", "-k", "net", capsys=capsys)
    assert code == 0 and "updated    net  .torchvet/snapshots/net.json" in out, out
    results = regression(repo, capsys)
    assert all(r["status"] == "passed" for cid, r in results.items()
               if cid.startswith("regression.")), results["out"]
    assert "net.json" in git(repo, "status", "--porcelain")  # the diff reviewers see


def test_the_model_changes_table_shows_before_and_after(
        repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    change(repo, "hidden=32", "hidden=48")
    results = regression(repo, capsys, "--baseline", "HEAD~1")
    changes = results["changes"]
    assert changes["params"] == [420, 628]
    assert changes["checkpoint_compatible"] is False
    assert changes["outputs_changed"] is True
    assert "model changes against base HEAD~1" in results["out"]
    assert "420 → 628 (+49.5%)" in results["out"]


def test_a_unit_new_in_the_change_has_no_baseline(
        repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pyproject = repo / "pyproject.toml"
    pyproject.write_text(pyproject.read_text().replace(
        'net = "zoo.models:make_net"', 'net = "zoo.models:make_net"\nnet2 = "zoo.models:make_net"'))
    git(repo, "commit", "-qam", "a second model")
    report = repo.parent / "run.json"
    code, out = torchvet("run", str(repo), "--checks", "regression", "-k", "net2", "-j", "1",
                         "--baseline", "HEAD~1", "--json", str(report), capsys=capsys)
    assert code == 0, out
    (unit,) = json.loads(report.read_text())["reports"]
    for result in unit["results"]:
        assert result["status"] == "skipped"
        assert "net2 is new (not a torchvet entry point in base HEAD~1" in result["message"]


def test_snapshot_adds_a_new_torch_version_and_a_run_under_it_compares_clean(
        repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = repo / ".torchvet" / "snapshots" / "net.json"
    data = json.loads(path.read_text())
    (key,) = data["measured"]
    data["measured"] = {"torch 2.99 / cpu": data["measured"][key]}  # taken under another
    path.write_text(json.dumps(data))
    results = regression(repo, capsys)
    assert results["regression.outputs"]["status"] == "skipped"
    assert f"no values for {key}" in results["regression.outputs"]["message"]
    assert results["regression.signature"]["status"] == "passed"
    code, out = torchvet("snapshot", str(repo), capsys=capsys)
    assert code == 0 and "added      net" in out and f"added the values for {key}" in out
    assert set(json.loads(path.read_text())["measured"]) == {key, "torch 2.99 / cpu"}
    results = regression(repo, capsys)
    assert results["regression.outputs"]["status"] == "passed"


def test_a_directory_of_snapshots_is_a_baseline(
        repo: Path, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, out = torchvet("snapshot", str(repo), "--output", str(tmp_path / "base"),
                         capsys=capsys)
    assert code == 0 and "created" in out
    change(repo, "nn.ReLU()", "nn.GELU()")
    results = regression(repo, capsys, "--baseline", str(tmp_path / "base"))
    assert results["regression.outputs"]["status"] == "failed"


def test_a_bad_base_ref_is_a_usage_error(repo: Path, capsys: pytest.CaptureFixture[str]
                                         ) -> None:
    assert cli.main(["run", str(repo), "--baseline", "no-such-ref"]) == 2
    assert "no such commit" in capsys.readouterr().err


def test_in_an_actions_log_what_the_base_prints_is_inside_the_block(repo: Path) -> None:
    """The base's factories are the project's code too: they run inside the same
    stop-commands block as the pull request's units (and `torchvet snapshot`'s inside
    one of its own), and a bad ref closes it."""
    forged = "::error file=FORGED.py,line=1::forged by the base"
    models = repo / "src" / "zoo" / "models.py"
    original = models.read_text()
    models.write_text(original.replace(
        "def make_net():\n", f"def make_net():\n    print({forged!r}, flush=True)\n"))
    git(repo, "commit", "-qam", "a base that prints a workflow command")
    base = git(repo, "rev-parse", "HEAD").strip()
    actions = {"GITHUB_ACTIONS": "true"}
    taken = run_cli("snapshot", str(repo), "-s", env=actions)  # `torchvet snapshot` too
    assert taken.returncode == 0 and forged in taken.stdout, taken.stdout + taken.stderr
    assert not [c for c in replay_log(taken.stdout) if "forged" in c[2]]
    models.write_text(original)
    git(repo, "commit", "-qam", "the pull request")
    proc = run_cli("run", str(repo), "--checks", "regression", "-j", "1", "-s",
                   "--baseline", base, env=actions)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert forged in proc.stdout
    assert not [c for c in replay_log(proc.stdout) if "forged" in c[2]]
    bad = run_cli("run", str(repo), "--baseline", "no-such-ref", env=actions)
    assert bad.returncode == 2 and "no such commit" in bad.stderr
    assert bad.stdout.startswith("::stop-commands::")
    replay_log(bad.stdout)  # fails when the log ends inside the block


def test_snapshot_files_are_small_and_reviewable(repo: Path) -> None:
    text = (repo / ".torchvet" / "snapshots" / "net.json").read_text()
    assert len(text) < 4096
    assert '"encoder.0": {"bias": "32", "weight": "32x8"},' in text
    assert textwrap.dedent(text).startswith('{\n  "torchvet_snapshot": 1,\n  "unit": "net",')


@pytest.mark.parametrize("example", ["quickstart", "buggy"])
def test_the_examples_snapshots_compare_clean_on_a_second_run(
        example: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    project = tmp_path / example
    shutil.copytree(EXAMPLES / example, project)
    code, out = torchvet("snapshot", str(project), "-j", "2", capsys=capsys)
    assert code == 0 and "created" in out and "differs" not in out, out
    report = tmp_path / "run.json"
    code, out = torchvet("run", str(project), "--checks", "regression", "-j", "2",
                         "--json", str(report), capsys=capsys)
    assert code == 0, out
    verdicts = {(unit["name"], r["id"]): r["status"]
                for unit in json.loads(report.read_text())["reports"]
                for r in unit["results"]}
    assert verdicts and set(verdicts.values()) == {"passed"}, verdicts
    assert "model changes against .torchvet/snapshots:" in out
    code, out = torchvet("snapshot", str(project), capsys=capsys)
    assert code == 0 and "created" not in out and "updated" not in out, out
