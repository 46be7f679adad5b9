"""project.model_choice and project.scaffold on fixture projects shaped like real ones:
a library whose main class is also built inside its other models, with `*args,
**kwargs` constructors, colliding class names and acronyms (vit-pytorch), and an
examples folder whose trained model derives from nn.Transformer (pytorch/examples)."""

from __future__ import annotations

import ast
import importlib
import shutil
import sys
from pathlib import Path

import pytest

from torchvet.project.scaffold import analyse, skeleton_source

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "init_projects"


def proposal(name: str) -> tuple[dict[str, tuple[str, str]], dict[str, str]]:
    """{entry: (value, reason)} of the direct entries and {class: reason} of those left out."""
    found = analyse(FIXTURES / name)
    entries = {c.name: (c.value, c.reason) for c in found.candidates}
    for package, classes in found.skeleton.items():
        for cls in classes:
            entries[cls.entry] = (f"{package}:{cls.name}", cls.reason)
    return entries, {c.name: c.reason for c in found.left_out}


def test_the_main_class_is_proposed_although_other_models_build_it() -> None:
    entries, left_out = proposal("vitlib")
    assert entries["vit"] == ("vitlib:ViT", "exported")
    assert entries["cait"] == ("vitlib:CaiT", "README")
    assert entries["siglip"] == ("vitlib:SigLIP", "tested in test_models.py")
    assert left_out == {"Attention": "part of CaiT"}


def test_classes_forwarding_args_and_kwargs_are_not_zero_argument() -> None:
    found = analyse(FIXTURES / "vitlib")
    direct = {c.value for c in found.candidates}
    assert "vitlib.vit:DistillableViT" not in direct
    assert "vitlib.xcit:T2TViT" not in direct
    skeleton = {c.name: c.needs_args for c in found.skeleton["vitlib"]}
    assert skeleton["DistillableViT"] == ["image_size", "patch_size", "num_classes", "dim"]
    assert skeleton["T2TViT"] == ["*args", "**kwargs"]


def test_colliding_class_names_get_module_qualified_unique_entries() -> None:
    entries, _ = proposal("vitlib")
    assert entries["simple_vit"][0] == "vitlib.simple_vit:SimpleViT"
    assert entries["simple_vit_3d"][0] == "vitlib.simple_vit_3d:SimpleViT"
    assert {"t2t_vit", "xcit", "siglip", "distillable_vit"} <= set(entries)


def test_an_examples_folder_proposes_the_trained_transformer_not_its_layer() -> None:
    entries, left_out = proposal("wlm")
    assert entries["transformer"] == (":TransformerModel", "trained in main.py")
    assert left_out == {"PositionalEncoding": "part of TransformerModel"}
    assert entries["mnist_net"] == ("mnist:Net", "trained in mnist.py")
    assert entries["mnist_rnn_net"] == ("mnist_rnn:Net", "trained in mnist_rnn.py")


def test_the_skeleton_builds_as_the_project_does_and_imports(tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch
                                                             ) -> None:
    root = tmp_path / "vitlib"
    shutil.copytree(FIXTURES / "vitlib", root)
    found = analyse(root)
    source = skeleton_source(found.skeleton["vitlib"])
    functions = [n.name for n in ast.parse(source).body if isinstance(n, ast.FunctionDef)]
    assert len(functions) == len(set(functions))
    assert ('return {"model": ViT(image_size=16, patch_size=4, num_classes=3, dim=8), '
            '"inputs": torch.randn(1, 3, 16, 16)}') in source
    (root / "vitlib" / "torchvet_factories.py").write_text(source)
    monkeypatch.syspath_prepend(str(root))
    for name in [m for m in sys.modules if m == "vitlib" or m.startswith("vitlib.")]:
        monkeypatch.delitem(sys.modules, name)
    module = importlib.import_module("vitlib.torchvet_factories")
    built = module.make_vit()
    assert built["model"](built["inputs"]).shape == (1, 3)
    with pytest.raises(NotImplementedError, match="fill in make_distillable_vit"):
        module.make_distillable_vit()
