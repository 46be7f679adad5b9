"""In a GitHub Actions log every command that prints text from the project (`list`,
`merge`, errors) leaves it inert: inside a stop-commands block on stdout, neutralised on
stderr (which the runner reads for commands too)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.helpers import FIXTURES, run_cli, sample_run
from tests.helpers.workflow import replay_log
from torchvet.reporters import json_report
from torchvet.results import CheckResult, Status

FORGED = "::error file=FORGED.py,line=1::forged"

ACTIONS = {"GITHUB_ACTIONS": "true"}


def test_merge_prints_user_text_inside_a_block(tmp_path: Path) -> None:
    run = sample_run()
    run.reports[0].results.append(CheckResult(
        "forward.finite", Status.FAILED, f"line one\n{FORGED}\n##[error]legacy", "d"))
    run.reports[0].output = f"{FORGED}\n"
    json_report.write(run, tmp_path / "a.json")
    proc = run_cli("merge", str(tmp_path / "a.json"), env=ACTIONS)
    assert proc.returncode == 1, proc.stderr
    assert FORGED in proc.stdout and "##[error]legacy" in proc.stdout
    assert replay_log(proc.stdout) == [] and replay_log(proc.stderr) == []


def test_list_prints_inside_a_block(tmp_path: Path) -> None:
    proc = run_cli("list", str(FIXTURES / "faults"), env=ACTIONS)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0].startswith("::stop-commands::") and lines[-1].startswith("::")
    assert replay_log(proc.stdout) == []
    json_proc = run_cli("list", str(FIXTURES / "faults"), "--json", env=ACTIONS)
    rows = json.loads("\n".join(json_proc.stdout.splitlines()[1:-1]))
    assert {row["name"] for row in rows} >= {"healthy", "segfault"}


@pytest.mark.parametrize("name", ['"evil\\n  ::error::forged"', '"a ##[error]b"'])
def test_a_bad_name_is_an_inert_usage_error(tmp_path: Path, name: str) -> None:
    (tmp_path / "pyproject.toml").write_text(
        f'[project]\nname = "p"\nversion = "0"\n[project.entry-points."torchvet.models"]\n'
        f'{name} = "m:f"\n', encoding="utf-8")
    for command in ("list", "run"):
        proc = run_cli(command, str(tmp_path), env=ACTIONS)
        assert proc.returncode == 2, proc.stderr
        assert "an entry point name may hold only" in proc.stderr
        assert replay_log(proc.stderr) == []
        [(name_, props, data)] = replay_log(proc.stdout)  # torchvet's own, escaped
        assert (name_, props["title"]) == ("error", "torchvet")
        assert "\n" not in data.split("'")[0]


def test_inside_the_actions_block_no_block_of_its_own() -> None:
    """The action relays `torchvet run` inside its own block: a nested one is noise."""
    proc = run_cli("list", str(FIXTURES / "faults"),
                   env={**ACTIONS, "TORCHVET_RELAYED": "1"})
    assert proc.returncode == 0 and "::stop-commands::" not in proc.stdout
