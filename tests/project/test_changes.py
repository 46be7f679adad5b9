"""--changed-since: which units a change since a git ref can affect (torchvet.project.changes).

Every test builds a small git repository: a src-layout project whose factories import
each other through relative, absolute and nested-package imports, one through a
registry that imports dynamically, and a dataset that feeds a model.
"""

from __future__ import annotations

import json
import subprocess
import textwrap
from pathlib import Path

import pytest

from tests.helpers import run_cli
from torchvet.project.changes import ChangedUnits, ChangesError, module_imports, select_changed
from torchvet.project.discovery import discover

PYPROJECT = """\
[project]
name = "zoo"
version = "0"

[project.entry-points."torchvet.models"]
alpha = "zoo.alpha:make"
beta = "zoo.beta:make"
gamma = "zoo.plugins:make"
delta = "zoo.beta:make_other"

[project.entry-points."torchvet.datasets"]
digits = "zoo.data:make_digits"

[tool.torchvet.models.delta]
dataset = "digits"
"""

FILES = {
    "src/zoo/__init__.py": "",
    "src/zoo/common.py": "WIDTH = 4\n",
    "src/zoo/alpha.py": """\
        from torch import nn

        from .common import WIDTH


        def make():
            return nn.Linear(WIDTH, 2)
        """,
    "src/zoo/beta.py": """\
        import zoo.layers.attention as attention
        from torch import nn


        def make():
            return nn.Sequential(attention.Block(), nn.Linear(4, 2))


        def make_other():
            return nn.Linear(4, 2)
        """,
    "src/zoo/layers/__init__.py": "",
    "src/zoo/layers/attention.py": """\
        from torch import nn

        from ..common import WIDTH


        def helper():
            from zoo.layers import norms  # imported lazily: still a dependency
            return norms


        class Block(nn.Identity):
            width = WIDTH
        """,
    "src/zoo/layers/norms.py": "EPS = 1e-5\n",
    "src/zoo/registry.py": """\
        import importlib


        def load(name):
            return importlib.import_module(f"zoo.{name}")
        """,
    "src/zoo/plugins.py": """\
        from . import registry


        def make():
            return registry.load("alpha").make()
        """,
    "src/zoo/data.py": """\
        def make_digits():
            return {"dataset": list(range(8)), "batch_size": 2}
        """,
    "README.md": "# zoo\n",
    "docs/index.md": "docs\n",
    "tests/test_zoo.py": "def test_nothing():\n    pass\n",
    "scripts/train.py": "print('train')\n",
}


def git(root: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@example.com",
         "-c", "commit.gpgsign=false", *args],
        cwd=root, check=True, capture_output=True, text=True,
    ).stdout


def write(root: Path, rel: str, text: str) -> None:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text))


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    root = tmp_path / "zoo"
    root.mkdir()
    git(root, "init", "-q", "-b", "main")
    write(root, "pyproject.toml", PYPROJECT)
    for rel, text in FILES.items():
        write(root, rel, text)
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "base")
    git(root, "tag", "base")
    git(root, "checkout", "-q", "-b", "feature")
    return root


def select(root: Path, ref: str = "base") -> tuple[ChangedUnits, dict[str, str]]:
    project, factories = discover(root, include_installed=False)
    selection = select_changed(project, factories, ref, {"delta": "digits"})
    return selection, {f.name: selection.why(f) for f in selection.selected(factories)}


def commit(root: Path, message: str = "change") -> None:
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", message)


def test_nothing_changed_selects_nothing(repo: Path) -> None:
    selection, chosen = select(repo)
    assert chosen == {}
    assert selection.changed == [] and not selection.everything


def test_committed_change_selects_the_units_that_import_it(repo: Path) -> None:
    write(repo, "src/zoo/common.py", "WIDTH = 8\n")
    commit(repo)
    _, chosen = select(repo)
    # alpha imports common directly; beta (and delta, in the same module) through
    # layers.attention (a relative ..import); gamma reaches alpha through a dynamic import,
    # so any change may affect it. The dataset is untouched.
    assert set(chosen) == {"alpha", "beta", "delta", "gamma"}
    assert chosen["alpha"] == "src/zoo/common.py changed (imported via zoo.alpha -> zoo.common)"
    assert chosen["beta"] == (
        "src/zoo/common.py changed (imported via zoo.beta -> zoo.layers.attention -> "
        "zoo.common)")
    assert chosen["gamma"] == (
        "src/zoo/registry.py:5 imports dynamically (importlib.import_module(f'zoo.{name}')), "
        "which may reach any module under zoo; src/zoo/common.py changed")


def test_uncommitted_and_lazy_imports_count(repo: Path) -> None:
    write(repo, "src/zoo/layers/norms.py", "EPS = 1e-6\n")  # unstaged, imported in a def
    _, chosen = select(repo)
    assert set(chosen) == {"beta", "delta", "gamma"}
    assert "zoo.beta -> zoo.layers.attention -> zoo.layers.norms" in chosen["beta"]


def test_untracked_module_nobody_imports_reaches_only_dynamic_importers(repo: Path) -> None:
    write(repo, "src/zoo/extra.py", "X = 1\n")
    selection, chosen = select(repo)
    assert selection.changed == ["src/zoo/extra.py"]
    assert set(chosen) == {"gamma"}


def test_factory_module_itself_and_the_dataset_it_feeds(repo: Path) -> None:
    write(repo, "src/zoo/data.py", "def make_digits():\n    return {'dataset': [1, 2]}\n")
    git(repo, "add", "-A")  # staged, not committed
    _, chosen = select(repo)
    assert chosen["digits"] == "src/zoo/data.py changed"
    assert chosen["delta"] == "src/zoo/data.py changed through dataset digits"
    assert "alpha" not in chosen and "beta" not in chosen


def test_documentation_tests_and_scripts_select_nothing(repo: Path) -> None:
    write(repo, "README.md", "# zoo, now documented\n")
    write(repo, "docs/index.md", "more\n")
    write(repo, "tests/test_zoo.py", "def test_more():\n    pass\n")
    write(repo, "scripts/train.py", "print('faster')\n")
    write(repo, ".github/workflows/ci.yml", "on: push\n")
    commit(repo)
    selection, chosen = select(repo)
    assert len(selection.changed) == 5
    assert chosen == {}


@pytest.mark.parametrize("rel, text", [
    ("pyproject.toml", PYPROJECT + "\n[tool.torchvet]\nseed = 1\n"),
    ("requirements.txt", "torch\n"),
    ("configs/model.yaml", "width: 8\n"),
])
def test_configuration_selects_everything(repo: Path, rel: str, text: str) -> None:
    write(repo, rel, text)
    commit(repo)
    selection, chosen = select(repo)
    assert set(chosen) == {"alpha", "beta", "gamma", "delta", "digits"}
    assert selection.everything.startswith(f"{rel} changed")


def test_a_changed_file_that_does_not_parse_selects_everything(repo: Path) -> None:
    write(repo, "src/zoo/layers/norms.py", "EPS = (\n")
    selection, chosen = select(repo)
    assert len(chosen) == 5
    assert "src/zoo/layers/norms.py changed and cannot be parsed" in selection.everything


def test_a_deleted_module_selects_its_importers(repo: Path) -> None:
    git(repo, "rm", "-q", "src/zoo/common.py")
    commit(repo)
    _, chosen = select(repo)
    assert set(chosen) == {"alpha", "beta", "delta", "gamma"}


def test_changes_since_the_merge_base_only(repo: Path) -> None:
    """A commit on main after the branch point is not the pull request's change."""
    git(repo, "checkout", "-q", "main")
    write(repo, "src/zoo/common.py", "WIDTH = 16\n")
    commit(repo, "main moves on")
    git(repo, "checkout", "-q", "feature")
    write(repo, "src/zoo/data.py", "def make_digits():\n    return {'dataset': [3]}\n")
    commit(repo)
    selection, chosen = select(repo, "main")
    assert selection.changed == ["src/zoo/data.py"]
    assert set(chosen) == {"digits", "delta", "gamma"}


def test_unknown_ref_and_no_repository(repo: Path, tmp_path: Path) -> None:
    project, factories = discover(repo, include_installed=False)
    with pytest.raises(ChangesError, match=r"no such commit.*fetch-depth: 0"):
        select_changed(project, factories, "no-such-ref")
    outside = tmp_path / "plain"
    outside.mkdir()
    (outside / "pyproject.toml").write_text(PYPROJECT)
    project, factories = discover(outside, include_installed=False)
    with pytest.raises(ChangesError, match="not in a git repository"):
        select_changed(project, factories, "HEAD")


def test_a_ref_that_git_would_read_as_an_option_is_refused(repo: Path) -> None:
    project, factories = discover(repo, include_installed=False)
    target = repo / "written-by-git.txt"
    with pytest.raises(ChangesError, match="cannot start with '-'"):
        select_changed(project, factories, f"--output={target}")
    assert not target.exists()


def test_module_imports_resolves_relative_and_constant_dynamic_imports(tmp_path: Path) -> None:
    file = tmp_path / "pkg" / "sub" / "mod.py"
    text = textwrap.dedent("""\
        import os, pkg.a.b as ab
        from . import sibling
        from .. import top
        from ..other import thing
        from ..star import *
        import importlib
        importlib.import_module("pkg.constant")
        __import__("pkg.dunder")
        """)
    info = module_imports("pkg.sub.mod", file, text, "pkg/sub/mod.py")
    assert {"os", "pkg.a.b", "pkg.sub", "pkg.sub.sibling", "pkg", "pkg.top", "pkg.other",
            "pkg.other.thing", "importlib", "pkg.constant", "pkg.dunder"} <= set(info.imports)
    assert info.dynamic == []
    source = textwrap.dedent("""\
        import importlib
        importlib.import_module(name)
        importlib.import_module("pkg.models." + name)
        importlib.import_module(f".{name}", __name__)
        importlib.import_module("pkg.%s" % name)
        __import__("pkg.{}".format(name))
        importlib.util.spec_from_file_location("x", path)
        """)
    dynamic = module_imports("pkg.m", tmp_path / "pkg" / "m.py", source, "pkg/m.py")
    assert [prefix for prefix, _ in dynamic.dynamic] == [
        "", "pkg.models.", "pkg.m.", "pkg.", "pkg.", ""]
    assert dynamic.dynamic[0][1] == (
        "pkg/m.py:2 imports dynamically (importlib.import_module(name))")


# --------------------------------------------------------------------------- the CLI


def test_list_shows_the_selection_and_why(repo: Path) -> None:
    write(repo, "src/zoo/layers/attention.py",
          FILES["src/zoo/layers/attention.py"].replace("Identity", "Module"))
    proc = run_cli("list", str(repo), "--changed-since", "base")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0] == "--changed-since base: 3 of 5 unit(s) affected by 1 changed file(s)"
    assert lines[1].split()[:2] == ["model", "beta"]
    assert lines[2].strip() == (
        "because src/zoo/layers/attention.py changed (imported via zoo.beta -> "
        "zoo.layers.attention)")
    assert [line.split()[:2] for line in lines[3::2]] == [["model", "delta"], ["model", "gamma"]]
    as_json = json.loads(run_cli("list", str(repo), "--changed-since", "base", "--json").stdout)
    assert [(u["name"], u["changed"][:28]) for u in as_json] == [
        ("beta", "src/zoo/layers/attention.py "), ("delta", "src/zoo/layers/attention.py "),
        ("gamma", "src/zoo/registry.py:5 import")]


def test_list_when_everything_or_nothing_is_selected(repo: Path) -> None:
    proc = run_cli("list", str(repo), "--changed-since", "base")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == (
        "--changed-since base: 0 of 5 unit(s) affected by 0 changed file(s)")
    write(repo, "pyproject.toml", PYPROJECT + "# touched\n")
    proc = run_cli("list", str(repo), "--changed-since", "base")
    assert proc.stdout.splitlines()[0] == (
        "--changed-since base: 1 changed file(s); every unit selected: pyproject.toml changed "
        "(project configuration, or a file torchvet cannot trace to a unit)")
    assert len(proc.stdout.splitlines()) == 6


def test_run_with_nothing_affected_succeeds_without_starting_workers(repo: Path,
                                                                      tmp_path: Path) -> None:
    report = tmp_path / "r.json"
    proc = run_cli("run", str(repo), "--changed-since", "base", "--json", str(report),
                   timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "--changed-since base: 0 of 5 unit(s) affected" in proc.stdout
    assert json.loads(report.read_text())["reports"] == []


def test_run_and_list_reject_an_unknown_ref(repo: Path) -> None:
    for command in ("run", "list"):
        proc = run_cli(command, str(repo), "--changed-since", "nope")
        assert proc.returncode == 2
        assert "--changed-since nope: no such commit" in proc.stderr


@pytest.mark.slow
def test_run_checks_only_the_affected_units(repo: Path, tmp_path: Path) -> None:
    write(repo, "src/zoo/common.py", "WIDTH = 6\n")
    report = tmp_path / "r.json"
    proc = run_cli("run", str(repo), "--changed-since", "base", "--checks", "forward.runs",
                   "--exclude", "gamma,delta", "--json", str(report), timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "--changed-since base: 2 of 5 unit(s) affected by 1 changed file(s)" in proc.stdout
    assert sorted(u["name"] for u in json.loads(report.read_text())["reports"]) == [
        "alpha", "beta"]
