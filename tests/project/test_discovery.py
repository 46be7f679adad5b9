"""Discovery: entry points from pyproject and installed distributions, never importing
user code."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import pytest

from torchvet.project.discovery import (
    DiscoveryError,
    discover,
    filter_factories,
    find_definition_line,
    shard,
    split_patterns,
)


def write_project(root: Path, entries: str, module: str = "", src: bool = True) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "pyproject.toml").write_text(textwrap.dedent(entries))
    if module:
        pkg = (root / "src" / "pkg") if src else (root / "pkg")
        pkg.mkdir(parents=True, exist_ok=True)
        (pkg / "__init__.py").write_text("")
        (pkg / "models.py").write_text(textwrap.dedent(module))
    return root


PYPROJECT = """\
[project]
name = "demo-project"
version = "0"

[project.entry-points."torchvet.models"]
resnet18 = "pkg.models:make_resnet"
vit_tiny = "pkg.models:ViTFactory"
mlp = "pkg.models:MLP_FACTORY"

[project.entry-points."torchvet.datasets"]
train = "pkg.models:make_train"
"""

MODULE = """\
raise RuntimeError("discovery must not import user code")


def make_resnet():
    ...


class ViTFactory:
    ...


MLP_FACTORY = make_resnet


def make_train():
    ...
"""


def test_pyproject_factories_with_source_lines(tmp_path: Path) -> None:
    root = write_project(tmp_path / "proj", PYPROJECT, MODULE)
    project, factories = discover(root)
    by_name = {f.name: f for f in factories}
    assert set(by_name) == {"resnet18", "vit_tiny", "mlp", "train"}
    assert by_name["resnet18"].kind == "model" and by_name["train"].kind == "dataset"
    assert by_name["resnet18"].dist == "demo-project"
    assert by_name["resnet18"].value == "pkg.models:make_resnet"
    assert by_name["resnet18"].file == str(root / "src/pkg/models.py")
    assert (by_name["resnet18"].line, by_name["vit_tiny"].line, by_name["mlp"].line) == (4, 8, 12)
    assert str(root / "src") in by_name["resnet18"].sys_path
    assert project.dist_name == "demo-project"
    assert "pkg.models" not in sys.modules


def test_flat_layout_puts_the_root_on_the_path(tmp_path: Path) -> None:
    root = write_project(tmp_path / "flat", PYPROJECT, MODULE, src=False)
    _, factories = discover(root)
    assert factories[0].sys_path == (str(root),)
    assert factories[0].file is not None and factories[0].file.endswith("pkg/models.py")


def test_installed_distributions(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    site = tmp_path / "site"
    info = site / "fancy_models-1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: fancy-models\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(
        "[torchvet.models]\nfancy = fancy_models.zoo:make\n\n"
        "[torchvet.datasets]\nfancy_data = fancy_models.zoo:data\n"
    )
    (site / "fancy_models").mkdir()
    (site / "fancy_models" / "__init__.py").write_text("")
    (site / "fancy_models" / "zoo.py").write_text("import os\n\ndef make():\n    pass\n")
    monkeypatch.syspath_prepend(str(site))
    empty = tmp_path / "empty"
    empty.mkdir()
    _, factories = discover(empty)
    by_name = {f.name: f for f in factories}
    assert by_name["fancy"].dist == "fancy-models"
    assert by_name["fancy"].line == 3
    assert by_name["fancy_data"].kind == "dataset"
    # a project that declares its own factories does not pull in unrelated installs
    root = write_project(tmp_path / "proj", PYPROJECT, MODULE)
    _, own = discover(root)
    assert "fancy" not in {f.name for f in own}
    _, both = discover(root, include_installed=True)
    assert {"fancy", "resnet18"} <= {f.name for f in both}


def test_name_clash_between_distributions_is_qualified(tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    site = tmp_path / "site"
    for dist in ("alpha", "beta"):
        info = site / f"{dist}-1.0.dist-info"
        info.mkdir(parents=True)
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 1.0\n")
        (info / "entry_points.txt").write_text(f"[torchvet.models]\nnet = {dist}.m:make\n")
    monkeypatch.syspath_prepend(str(site))
    empty = tmp_path / "empty"
    empty.mkdir()
    _, factories = discover(empty)
    names = {f.name for f in factories}
    assert {"alpha.net", "beta.net"} <= names


@pytest.mark.parametrize("value", ['"no_colon"', "42"])
def test_bad_entry_point_value(tmp_path: Path, value: str) -> None:
    root = tmp_path / "bad"
    root.mkdir()
    (root / "pyproject.toml").write_text(
        f'[project]\nname = "x"\n[project.entry-points."torchvet.models"]\nm = {value}\n')
    with pytest.raises(DiscoveryError, match="module:function"):
        discover(root)


def test_invalid_toml(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text("[project\nname=")
    with pytest.raises(DiscoveryError, match="invalid TOML"):
        discover(tmp_path)


def test_missing_path(tmp_path: Path) -> None:
    with pytest.raises(DiscoveryError, match="no such directory"):
        discover(tmp_path / "nope")


def test_filters_accept_globs_and_commas(tmp_path: Path) -> None:
    root = write_project(tmp_path / "proj", PYPROJECT, MODULE)
    _, factories = discover(root)
    include = split_patterns(["resnet*,vit_*"])
    assert [f.name for f in filter_factories(factories, include)] == ["resnet18", "vit_tiny"]
    assert [f.name for f in filter_factories(factories, (), ["vit*", "train"])] == [
        "mlp", "resnet18"]


def test_shards_are_deterministic_and_complete(tmp_path: Path) -> None:
    root = write_project(tmp_path / "proj", PYPROJECT, MODULE)
    _, factories = discover(root)
    shards = [shard(factories, i, 3) for i in (1, 2, 3)]
    names = [f.name for s in shards for f in s]
    assert sorted(names) == sorted(f.name for f in factories)
    assert len(set(names)) == len(names)
    assert shards == [shard(list(reversed(factories)), i, 3) for i in (1, 2, 3)]
    with pytest.raises(ValueError):
        shard(factories, 4, 3)


def test_definition_line_of_assignments(tmp_path: Path) -> None:
    module = tmp_path / "m.py"
    module.write_text("x = 1\n\nasync def f():\n    pass\n\ny: int = 2\n")
    assert find_definition_line(module, "f") == 3
    assert find_definition_line(module, "y") == 6
    assert find_definition_line(module, "missing") is None
