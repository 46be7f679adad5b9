"""`torchvet init` end to end on fresh copies of the examples with their torchvet stanza
removed: it proposes the stanza they had, writes nothing without --write, and after
`init --write` `torchvet run` finds the same units and verdicts as the original."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import EXAMPLES, run_cli
from torchvet.project.discovery import discover
from torchvet.project.tomlcompat import parse_toml

pytestmark = pytest.mark.slow
STANZA = re.compile(r'\[project\.entry-points\."torchvet\.[a-z]+"\]\n(?:[^\[\n][^\n]*\n)*\n?')


def fresh_copy(example: str, tmp_path: Path) -> Path:
    root = tmp_path / example
    shutil.copytree(EXAMPLES / example, root)
    pyproject = root / "pyproject.toml"
    pyproject.write_text(STANZA.sub("", pyproject.read_text()))
    assert not discover(root)[1]
    return root


def entry_points(root: Path) -> dict:
    return parse_toml((root / "pyproject.toml").read_text())["project"]["entry-points"]


@pytest.mark.parametrize("example", ["quickstart", "buggy"])
def test_init_write_then_run_checks_what_the_example_declared(example: str,
                                                              tmp_path: Path) -> None:
    root = fresh_copy(example, tmp_path)
    before = (root / "pyproject.toml").read_text()
    shown = run_cli("init", str(root))
    assert shown.returncode == 0, shown.stderr
    assert '+[project.entry-points."torchvet.models"]' in shown.stdout
    assert (root / "pyproject.toml").read_text() == before

    written = run_cli("init", str(root), "--write")
    assert written.returncode == 0 and "next: torchvet run" in written.stdout, written.stderr
    original = parse_toml((EXAMPLES / example / "pyproject.toml").read_text())
    assert entry_points(root) == original["project"]["entry-points"]

    ours, theirs = tmp_path / "copy.json", tmp_path / "original.json"
    copy_run = run_cli("run", str(root), "--json", str(ours))
    original_run = run_cli("run", str(EXAMPLES / example), "--json", str(theirs))
    assert copy_run.returncode == original_run.returncode == (0 if example == "quickstart"
                                                              else 1)

    def verdicts(path: Path) -> dict:
        """Status of every check; the message too where it names a culprit (a passing
        message may carry a timing)."""
        return {(u["name"], r["id"]): (r["status"], "" if r["status"] == "passed" else
                                       r["message"].replace(f"examples/{example}/", ""))
                for u in json.loads(path.read_text())["reports"] for r in u["results"]}

    assert verdicts(ours) == verdicts(theirs)
    assert run_cli("init", str(root)).stdout.startswith("nothing to add")


def test_init_imports_neither_torch_nor_the_project(tmp_path: Path) -> None:
    root = fresh_copy("buggy", tmp_path)
    code = ("import sys\nfrom torchvet.cli import main\n"
            f"assert main(['init', {str(root)!r}]) == 0\n"
            "assert not {'torch', 'buggy'} & set(sys.modules), 'imported'\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr


@pytest.mark.parametrize("fixture", ["vitlib", "wlm"])
def test_init_write_then_run_builds_every_entry_it_declared(fixture: str,
                                                            tmp_path: Path) -> None:
    """Shaped like vit-pytorch and pytorch/examples: after `init --write` (which checks
    first) every declared entry builds, the stanza's keys are unique, the skeleton
    imports, and the layers stay out."""
    root = tmp_path / fixture
    shutil.copytree(EXAMPLES.parent / "tests" / "fixtures" / "init_projects" / fixture, root)
    written = run_cli("init", str(root), "--write")
    assert written.returncode == 0, written.stderr
    assert "checked" in written.stdout and "next: torchvet run" in written.stdout
    models = entry_points(root)["torchvet.models"]
    assert "positional_encoding" not in models and "attention" not in models
    assert {"vit", "cait"} <= set(models) if fixture == "vitlib" else (
        {"transformer", "mnist_net", "mnist_rnn_net"} <= set(models))
    report = tmp_path / "run.json"
    ran = run_cli("run", str(root), "--checks", "forward,state", "--json", str(report))
    assert ran.returncode in (0, 1), ran.stderr
    units = json.loads(report.read_text())["reports"]
    assert {u["name"] for u in units} == set(models)
    errors = [(u["name"], r["message"]) for u in units for r in u["results"]
              if r["status"] == "error"]
    assert not errors
