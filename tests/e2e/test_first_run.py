"""A newcomer's first run prints no warning: numpy is a runtime dependency (torch's CPU
wheel does not pull it, and without it torch warns "Failed to initialize NumPy")."""

from __future__ import annotations

import pytest

from tests.helpers import EXAMPLES, ROOT, run_cli
from torchvet.project.tomlcompat import load_toml

pytestmark = pytest.mark.slow


def test_numpy_is_a_runtime_dependency() -> None:
    dependencies = load_toml(ROOT / "pyproject.toml")["project"]["dependencies"]
    assert any(d.split(">")[0].split("=")[0].strip() == "numpy" for d in dependencies)


def test_the_quickstart_runs_clean() -> None:
    proc = run_cli("run", str(EXAMPLES / "quickstart"))
    assert proc.returncode == 0, proc.stdout[-2000:]
    assert "warning" not in (proc.stdout + proc.stderr).lower(), proc.stderr
