"""The fixture repositories of the action's tests (tests/fixtures/action/) and what the
tests read from them."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

ACTION_FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "action"
HEALTHY = ACTION_FIXTURES / "healthy"


def culprit_line(path: Path) -> int:
    """The line of ``path`` marked ``# culprit`` (where an annotation must point)."""
    return next(i for i, text in enumerate(path.read_text().splitlines(), 1)
                if "# culprit" in text)


def copy_fixture(name: str, target: Path) -> Path:
    """A copy of the fixture repository ``name`` at ``target`` (a test may write there)."""
    shutil.copytree(ACTION_FIXTURES / name, target)
    return target


ATTACKS = ACTION_FIXTURES / "attacks"


def findings(output: str) -> list[dict[str, object]]:
    """The ``FINDING {json}`` lines the attacks fixture printed (tests/fixtures/action/
    attacks/src/attack_models/probes.py): attack, target, blocked, detail."""
    found = []
    for line in output.splitlines():
        if line.startswith("FINDING {"):
            found.append(json.loads(line.removeprefix("FINDING ")))
    return found
