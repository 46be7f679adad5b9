"""unit.adapters.timm: inputs of the pretrained_cfg input_size and cross-entropy over
num_classes, on a stand-in with timm's attribute names (checked against timm's sources
wherever timm is installed), plus a bug the adapter must not hide."""

from __future__ import annotations

import ast
import importlib.util
from pathlib import Path

import pytest

from tests.fixtures import models_timm_like as timm_like
from tests.helpers import assert_status, vet
from torchvet.project.config import UnitConfig
from torchvet.results import Status
from torchvet.unit.spec import normalize_model


def problems(results: dict) -> list[str]:
    return [f"{r.id}: {r.status.value}: {r.message}" for r in results.values()
            if r.status not in (Status.PASSED, Status.SKIPPED)]


def test_a_timm_classifier_gets_its_input_size_and_its_training_loss() -> None:
    results = vet(timm_like.timm_like_resnet)
    assert not problems(results), problems(results)
    assert_status(results["forward.runs"], Status.PASSED, "(2, 3, 32, 32) float32",
                  "inputs: TimmLikeResNet.pretrained_cfg['input_size'] (3, 32, 32)")
    assert_status(results["training.loss"], Status.PASSED,
                  "from CrossEntropyLoss over TimmLikeResNet.num_classes=10")
    assert_status(results["training.loss_at_init"], Status.PASSED, "ln(10)")


def test_the_older_default_cfg_alone_is_enough() -> None:
    model = timm_like.TimmLikeResNet(input_size=(3, 24, 24))
    del model.pretrained_cfg
    spec = normalize_model(model, "old", UnitConfig(), seed=0)
    assert spec.inputs is not None
    assert spec.inputs.description == "TimmLikeResNet.default_cfg['input_size'] (3, 24, 24)"
    assert spec.inputs.make(2).args[0].shape == (2, 3, 24, 24)


def test_a_feature_extractor_trains_against_the_surrogate_and_says_why() -> None:
    spec = normalize_model(timm_like.timm_like_features(), "features", UnitConfig(), seed=0)
    assert spec.loss is None and spec.num_classes is None
    result = vet(timm_like.timm_like_features, ["training.loss"])["training.loss"]
    assert_status(result, Status.PASSED, "surrogate loss", "num_classes=0: a feature extractor")


def test_dropout_left_on_at_eval_is_still_flagged() -> None:
    result = vet(timm_like.timm_like_dropout_bug, ["forward.determinism"])
    assert_status(result["forward.determinism"], Status.FAILED)


def _timm_sources() -> Path:
    spec = importlib.util.find_spec("timm")  # locates the package without importing it
    if spec is None or spec.origin is None:
        pytest.skip("timm is not installed (it needs a torchvision matching torch)")
    return Path(spec.origin).parent


def test_the_stand_in_uses_the_names_timm_sets_and_defines() -> None:
    root = _timm_sources()
    builder = (root / "models" / "_builder.py").read_text()
    assert "model.pretrained_cfg = pretrained_cfg" in builder
    assert "model.default_cfg = model.pretrained_cfg" in builder
    tree = ast.parse((root / "models" / "resnet.py").read_text())
    resnet = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "ResNet")
    methods = {n.name for n in resnet.body if isinstance(n, ast.FunctionDef)}
    assigned = {a.attr for n in ast.walk(resnet) if isinstance(n, ast.Assign)
                for t in n.targets for a in ast.walk(t) if isinstance(a, ast.Attribute)}
    ours = {n for n, v in vars(timm_like.TimmLikeResNet).items()
            if callable(v) and not n.startswith("_")} - {"forward"}
    assert ours <= methods, ours - methods
    assert {"num_classes", "num_features", "drop_rate", "global_pool", "fc"} <= assigned
    cfg = next(n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "_cfg")
    keys = {k.value for n in ast.walk(cfg) if isinstance(n, ast.Dict)
            for k in n.keys if isinstance(k, ast.Constant)}
    assert set(timm_like._cfg()) <= keys, set(timm_like._cfg()) - keys
