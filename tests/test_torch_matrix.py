"""scripts/torch-matrix/compare.py: a documented torch limit excuses only a skip or a
warning under an older torch, and any other verdict difference fails the comparison."""

from __future__ import annotations

import importlib.util
import json
import re
import sys
from pathlib import Path
from types import ModuleType

import pytest
import tomllib

from tests.helpers import ROOT

SCRIPT = ROOT / "scripts" / "torch-matrix" / "compare.py"
LIMITS = [{"below": "2.6", "check": "portability.autocast", "units": "*", "reason": "r"}]


def _compare() -> ModuleType:
    spec = importlib.util.spec_from_file_location("torch_matrix_compare", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_a_limit_excuses_a_skip_or_warn_below_its_version_only() -> None:
    compare = _compare()
    assert compare.documented(LIMITS, "2.1.2", "mlp", "portability.autocast", "skipped") == "r"
    assert compare.documented(LIMITS, "2.4.1", "mlp", "portability.autocast", "warned") == "r"
    assert compare.documented(LIMITS, "2.1.2", "mlp", "portability.autocast", "failed") is None
    assert compare.documented(LIMITS, "2.6.0", "mlp", "portability.autocast", "skipped") is None
    assert compare.documented(LIMITS, "2.1.2", "mlp", "state.roundtrip", "skipped") is None


def _report(path: Path, torch: str, status: str) -> Path:
    path.write_text(json.dumps({"torch_version": torch, "reports": [{"name": "mlp", "results": [
        {"id": "state.roundtrip", "status": status, "message": ""}]}]}), encoding="utf-8")
    return path


def test_an_undocumented_difference_fails_the_comparison(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    compare = _compare()
    main = _report(tmp_path / "main.json", "2.13.0", "passed")
    for status, expected in (("failed", 1), ("passed", 0)):
        other = _report(tmp_path / "other.json", "2.1.2", status)
        monkeypatch.setattr(sys, "argv", ["compare.py", str(main), str(other)])
        assert compare.main() == expected


def test_the_shipped_limits_file_parses_and_names_a_reason_for_each_limit() -> None:
    limits = tomllib.loads((SCRIPT.parent / "limits.toml").read_text(encoding="utf-8"))["limit"]
    assert limits and all({"below", "check", "units", "reason"} <= set(lim) for lim in limits)


def test_the_github_workflow_tests_the_versions_the_matrix_script_runs() -> None:
    script = (SCRIPT.parent / "run.sh").read_text(encoding="utf-8")
    found = re.search(r"VERSIONS=\(([\d. ]+)\)", script)
    assert found is not None
    workflow = (ROOT / ".github" / "workflows" / "ci.yml").read_text(encoding="utf-8")
    tested = set(re.findall(r'- torch: "([\d.]+)"', workflow))
    assert set(found.group(1).split()) <= tested
