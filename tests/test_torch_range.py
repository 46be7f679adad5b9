"""The supported torch range: one declaration, which pyproject and the README state too."""

from __future__ import annotations

import re

from tests.helpers import ROOT
from torchvet.torch_range import OLDEST_SUPPORTED, unsupported


def test_versions_below_the_floor_are_refused_and_the_rest_taken() -> None:
    assert unsupported("2.0.1") is not None
    assert unsupported("1.13.1") is not None
    assert unsupported("2.1.0") is None
    assert unsupported("2.13.0+cpu") is None
    assert unsupported("3.0") is None


def test_pyproject_and_readme_state_the_same_floor() -> None:
    floor = f"{OLDEST_SUPPORTED[0]}.{OLDEST_SUPPORTED[1]}"
    pyproject = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    assert re.findall(r'"torch>=([\d.]+)"', pyproject) == [floor]
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert f"Any torch ≥ {floor} works" in readme
