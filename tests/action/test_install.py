"""The pip command lines of the action: torch from its index first, then the project with
that torch pinned, and what a failed install is told to fix."""

from __future__ import annotations

import sys
import venv
from importlib.metadata import version
from pathlib import Path

import pytest

from torchvet.action.inputs import DEFAULT_TORCH_INDEX
from torchvet.action.install import (
    constraints_text,
    installed_torch,
    needs_project_files,
    pip_fix,
    project_install_command,
    torch_install_command,
    torch_matches,
)

PY = "/usr/bin/python3"


def test_torch_install_command_uses_the_cpu_index() -> None:
    assert torch_install_command(PY, "2.4.1", DEFAULT_TORCH_INDEX) == [
        PY, "-I", "-m", "pip", "install", "--only-binary", ":all:", "--index-url",
        "https://download.pytorch.org/whl/cpu", "torch==2.4.1"]
    assert torch_install_command(PY, "2.4", "https://i")[-1] == "torch==2.4.*"
    assert torch_install_command(PY, "2.5.0+cpu", "https://i")[-1] == "torch==2.5.0+cpu"


@pytest.mark.parametrize(("installed", "requested", "matches"), [
    ("2.13.0+cpu", "", True),
    ("2.13.0+cpu", "2.13", True),
    ("2.13.0+cpu", "2.13.0", True),
    ("2.13.0+cpu", "2.13.0+cpu", True),
    ("2.13.0+cpu", "2.1", False),
    ("2.13.0+cpu", "2.13.1", False),
    ("2.13.0", "2.13.0+cpu", False),
    ("", "2.4", False),
])
def test_torch_version_comparison(installed: str, requested: str, matches: bool) -> None:
    assert torch_matches(installed, requested) is matches


def test_project_install_pins_the_installed_torch() -> None:
    assert constraints_text("2.13.0+cpu") == "torch==2.13.0+cpu\n"
    argv = project_install_command(PY, [".[test]"], "/tmp/c.txt", DEFAULT_TORCH_INDEX)
    assert argv == [PY, "-m", "pip", "install", "--constraint", "/tmp/c.txt",
                    "--extra-index-url", "https://download.pytorch.org/whl/cpu", ".[test]"]
    # PyPI is already pip's index: no extra index then
    argv = project_install_command(PY, ["."], "/c", "https://pypi.org/simple")
    assert argv == [PY, "-m", "pip", "install", "--constraint", "/c", "."]


@pytest.mark.parametrize(("args", "needs"), [
    (["."], True), (["-e", "."], True), ([".[test]"], True), (["./"], True),
    (["-r", "requirements.txt"], False), (["mypkg==1.0"], False), (None, False)])
def test_which_installs_need_a_project_file(args: list[str] | None, needs: bool) -> None:
    assert needs_project_files(args) is needs


def test_the_installed_torch_is_read_from_the_pythons_metadata(tmp_path: Path) -> None:
    assert installed_torch(sys.executable, {}) == version("torch")
    venv.create(tmp_path / "bare", with_pip=False)  # no torch there
    assert installed_torch(str(tmp_path / "bare" / "bin" / "python"), {}) == ""


@pytest.mark.parametrize(("tail", "fix"), [
    (["ERROR: ResolutionImpossible: ..."], "conflict with the pinned torch"),
    (["ERROR: No matching distribution found for nope==9"], "not on the package index"),
    (["error: subprocess-exited-with-error"], "Fix the project's build or requirements"),
])
def test_a_failed_install_names_the_fix(tail: list[str], fix: str) -> None:
    assert fix in pip_fix(tail)
