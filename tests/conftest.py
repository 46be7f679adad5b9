"""Shared test helpers: run checks in-process on a factory and read verdicts."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest

from torchvet.project.config import UnitConfig
from torchvet.results import CheckResult, Status
from torchvet.unit.inline import check_inline

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
FIXTURES = Path(__file__).resolve().parent / "fixtures"


def vet(factory: Callable[[], Any], checks: Sequence[str] = (), *, kind: str = "model",
        seed: int = 0, config: UnitConfig | None = None) -> dict[str, CheckResult]:
    """Run ``checks`` in-process on ``factory``; results by check id."""
    return check_inline(factory, kind=kind, checks=checks, seed=seed, config=config)


def verdict(factory: Callable[[], Any], check_id: str, **kwargs: Any) -> CheckResult:
    """The result of one check; fails the test if the check did not report."""
    results = vet(factory, [check_id], **kwargs)
    assert check_id in results, f"{check_id} did not report; got {sorted(results)}"
    return results[check_id]


def assert_status(result: CheckResult, status: Status, *fragments: str) -> None:
    """``result`` has ``status`` and its message contains every fragment."""
    assert result.status is status, (
        f"{result.id}: expected {status.value}, got {result.status.value}: {result.message}\n"
        f"{result.details}"
    )
    for fragment in fragments:
        assert fragment in result.message, f"{fragment!r} not in {result.message!r}"


def line_in(path: Path, snippet: str) -> int:
    """1-based number of the first line of ``path`` that contains ``snippet``."""
    for number, text in enumerate(path.read_text().splitlines(), start=1):
        if snippet in text:
            return number
    raise AssertionError(f"{snippet!r} not in {path}")


def run_cli(*args: str, cwd: Path | None = None, env: dict[str, str] | None = None,
            timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """``python -m torchvet ARGS`` in a subprocess (the way users run it)."""
    environment = {**os.environ, "NO_COLOR": "1", **(env or {})}
    environment.pop("GITHUB_ACTIONS", None) if "GITHUB_ACTIONS" not in (env or {}) else None
    return subprocess.run(
        [sys.executable, "-m", "torchvet", *args],
        cwd=cwd or ROOT, env=environment, capture_output=True, text=True, timeout=timeout,
    )


@pytest.fixture
def healthy_fixture_path() -> Path:
    return EXAMPLES / "quickstart"
