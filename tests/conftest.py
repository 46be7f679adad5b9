"""pytest fixtures shared by every test module; helpers live in :mod:`tests.helpers`."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers import (  # noqa: F401  (re-exported while tests import from conftest)
    EXAMPLES,
    FIXTURES,
    ROOT,
    assert_status,
    line_in,
    run_cli,
    verdict,
    vet,
)


@pytest.fixture
def healthy_fixture_path() -> Path:
    return EXAMPLES / "quickstart"
