"""unit.adapters: which library a module belongs to, decided without importing any; the
registry holds one adapter module per library, each keyed by its own name."""

from __future__ import annotations

import subprocess
import sys

from torch import nn

from tests.fixtures import models_timm_like as timm_like
from tests.helpers import ROOT
from torchvet.unit.adapters import ADAPTERS, adapt, library_of


def test_plain_modules_get_no_adapter() -> None:
    assert library_of(nn.Linear(2, 2)) is None
    assert adapt(nn.Linear(2, 2), 0, 2, declared_inputs=False) is None


def test_the_registry_asks_lightning_first_and_keys_each_adapter_by_its_library() -> None:
    assert list(ADAPTERS) == ["Lightning", "Hugging Face", "timm"]
    for name, adapter in ADAPTERS.items():
        assert name == adapter.LIBRARY
        assert callable(adapter.detect) and callable(adapter.adapt)


def test_a_module_with_a_timm_config_is_recognised_by_its_attributes() -> None:
    assert library_of(timm_like.TimmLikeResNet()) == "timm"


def test_checking_a_plain_module_imports_none_of_the_libraries() -> None:
    code = (
        "import sys, torch\n"
        "from torchvet.project.config import UnitConfig\n"
        "from torchvet.unit.spec import normalize_model\n"
        "normalize_model(torch.nn.Linear(4, 2), 'm', UnitConfig(), 0)\n"
        "print(sorted(m for m in ('transformers', 'timm', 'lightning', 'pytorch_lightning')"
        " if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                         text=True, timeout=120, check=True)
    assert out.stdout.strip() == "[]", out.stderr
