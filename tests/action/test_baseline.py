"""The action's `baseline` input (torchvet.action.baseline): the committed snapshots by
default, a git ref handed to `torchvet run --baseline`, and nothing else."""

from __future__ import annotations

from pathlib import Path

import pytest

from torchvet.action.baseline import run_arguments
from torchvet.action.entrypoint import cli_command
from torchvet.action.inputs import parse_inputs


@pytest.mark.parametrize("value", ["", "snapshot"])
def test_the_default_compares_with_the_committed_snapshots(value: str) -> None:
    parsed, _ = parse_inputs({"INPUT_BASELINE": value})
    assert parsed.baseline == "snapshot"
    assert run_arguments(parsed) == []


def test_a_ref_reaches_torchvet_run() -> None:
    parsed, _ = parse_inputs({"INPUT_BASELINE": "0123abcd" * 5})
    argv = cli_command("python", parsed, Path("/ws"), Path("/tmp/r.json"))
    assert argv[-2:] == ["--baseline", "0123abcd" * 5]


@pytest.mark.parametrize("value", ["--output=/etc/passwd", "main; echo", "$(id)"])
def test_anything_but_a_ref_is_rejected(value: str) -> None:
    _, errors = parse_inputs({"INPUT_BASELINE": value})
    assert [e.name for e in errors] == ["baseline"]
    assert "not a git ref" in str(errors[0])
