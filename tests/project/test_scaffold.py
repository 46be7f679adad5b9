"""project.scaffold: torchvet init's static reading of a project — models and datasets
found by ast alone, layers and abstract bases left out, classes needing arguments sent
to a skeleton, tests and tooling never read."""

from __future__ import annotations

import ast
import textwrap
from pathlib import Path

from torchvet.project.scaffold import analyse, skeleton_source

MODELS = '''
import torch
from torch import nn
import lightning as L
from torch.utils.data import Dataset


class Block(nn.Module):                  # a layer: used inside Net
    def __init__(self, width=8):
        super().__init__()
        self.fc = nn.Linear(width, width)


class Net(nn.Module):
    def __init__(self, blocks=2):
        super().__init__()
        self.blocks = nn.ModuleList(Block() for _ in range(blocks))


class Wide(Net):                         # inherits Net's zero-argument constructor
    pass


class BaseEncoder(nn.Module):            # abstract by name
    pass


class Transformer(nn.Module):            # needs arguments: a skeleton
    def __init__(self, d_model, heads, *, dropout=0.1):
        super().__init__()


class Lit(L.LightningModule):
    pass


class Digits(Dataset):
    def __len__(self):
        return 4


def make_net():
    return Net(blocks=3)


def build_spec() -> dict:
    model = Wide()
    return {"model": model, "inputs": torch.randn(2, 8)}


def annotated() -> nn.Module:
    return _private_builder()


def with_args(width):
    return Net()


def _private():
    return Net()


def make_loader():
    return {"dataset": Digits(), "batch_size": 2}
'''


def project(tmp_path: Path) -> Path:
    pkg = tmp_path / "src" / "demo"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "models.py").write_text(textwrap.dedent(MODELS))
    (pkg / "test_models.py").write_text("from torch import nn\nclass T(nn.Module): pass\n")
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "helpers.py").write_text("class H(nn.Module): pass\n")
    return tmp_path


def test_factories_classes_and_datasets_are_found_without_importing(tmp_path: Path) -> None:
    found = analyse(project(tmp_path))
    entries = {(c.kind, c.name): c.value for c in found.candidates}
    assert entries == {
        ("model", "net"): "demo.models:make_net",
        ("model", "spec"): "demo.models:build_spec",
        ("model", "annotated"): "demo.models:annotated",
        ("dataset", "loader"): "demo.models:make_loader",
        ("model", "lit"): "demo.models:Lit",
    }
    assert [c.name for c in found.skeleton["demo"]] == ["Transformer"]
    assert found.skeleton["demo"][0].needs_args == ["d_model", "heads"]


def test_declared_values_are_left_out(tmp_path: Path) -> None:
    found = analyse(project(tmp_path), {"demo.models:make_net", "demo.models:Lit"})
    assert {c.name for c in found.candidates} == {"spec", "annotated", "loader"}


def test_the_skeleton_is_valid_python_with_a_todo_per_class(tmp_path: Path) -> None:
    found = analyse(project(tmp_path))
    source = skeleton_source(found.skeleton["demo"])
    tree = ast.parse(source)
    assert [n.name for n in tree.body if isinstance(n, ast.FunctionDef)] == [
        "make_transformer"]
    assert "from demo.models import Transformer" in source
    assert "TODO: build Transformer with real arguments (d_model, heads)" in source
