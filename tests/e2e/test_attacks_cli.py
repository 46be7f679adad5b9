"""A direct ``torchvet run`` in a GitHub Actions step (no container) on the attacks
fixture: units that signal torchvet, leave a setsid daemon, flood their output, raise
messages with lone surrogates and 10 MB: the run is not cancelled, the daemon dies with
its unit, nothing reaches the log as a workflow command, the honest units' report is
complete, and the report files replace a symlink rather than follow it."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from junitparser import JUnitXml

from tests.helpers import ROOT
from tests.helpers.action import ATTACKS, findings
from tests.helpers.workflow import read_outputs, replay_log
from torchvet.results import MESSAGE_LIMIT

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def attacked(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    tmp = tmp_path_factory.mktemp("attacks")
    (tmp / "tmp").mkdir()
    victim = tmp / "victim.txt"
    victim.write_text("precious\n")
    (tmp / "junit.xml").symlink_to(victim)
    (tmp / "outputs").touch()
    env = {**os.environ, "NO_COLOR": "1", "GITHUB_ACTIONS": "true", "TMPDIR": str(tmp / "tmp"),
           "GITHUB_OUTPUT": str(tmp / "outputs"), "GITHUB_STEP_SUMMARY": str(tmp / "summary"),
           "GITHUB_TOKEN": "SENTINEL-token"}
    proc = subprocess.run(
        [sys.executable, "-m", "torchvet", "run", str(ATTACKS), "-j", "1", "--timeout", "120",
         "--json", str(tmp / "report.json"), "--junit", str(tmp / "junit.xml")],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600,
        start_new_session=True)  # the units signal torchvet's process group, not pytest's
    report = json.loads((tmp / "report.json").read_text(encoding="utf-8"))
    units = {u["name"]: u for u in report["reports"]}
    return {"proc": proc, "tmp": tmp, "report": report, "units": units, "victim": victim}


def statuses(unit: dict) -> set[str]:
    return {r["status"] for r in unit["results"]}


def test_the_run_goes_on_and_the_honest_units_are_complete(attacked: dict) -> None:
    proc, units = attacked["proc"], attacked["units"]
    assert proc.returncode == 1, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert attacked["report"]["interrupted"] is False
    assert set(units) == {"honest_a", "honest_b", "daemon", "flood", "signals", "snoop",
                          "surrogate"}
    for name in ("honest_a", "honest_b", "daemon", "snoop"):
        assert statuses(units[name]) <= {"passed", "skipped"}, units[name]["results"]
    honest = [r["id"] for r in units["honest_a"]["results"]]
    assert "forward.runs" in honest and "training.loss" in honest
    assert honest == [r["id"] for r in units["honest_b"]["results"]]
    assert read_outputs((attacked["tmp"] / "outputs").read_text())["conclusion"] == "failure"


def test_a_unit_that_signals_torchvet_is_an_error_naming_the_signal(attacked: dict) -> None:
    results = attacked["units"]["signals"]["results"]
    [error] = [r for r in results if r["status"] == "error"]  # said once
    assert statuses(attacked["units"]["signals"]) <= {"error", "not_run"}
    assert "sent SIGTERM to torchvet" in error["message"], error
    assert "a unit cannot stop the run" in error["message"]
    assert "torchvet: ignored SIGTERM from process" in attacked["proc"].stdout


def test_a_setsid_daemon_dies_with_its_unit(attacked: dict) -> None:
    [daemon] = [f for f in findings(attacked["units"]["snoop"]["output"])
                if f["attack"] == "unit daemon"]
    assert daemon["blocked"] is True and daemon["detail"] == "gone"
    started = findings(attacked["units"]["daemon"]["output"])
    assert [f["detail"] for f in started] == ["started"]


def test_nothing_printed_by_the_units_is_a_workflow_command(attacked: dict) -> None:
    proc = attacked["proc"]
    assert "from the unit daemon" in proc.stdout  # the daemon wrote into the log...
    commands = replay_log(proc.stdout)  # ...inside the stop-commands block only
    assert {name for name, _, _ in commands} == {"error"}
    assert all(props["title"].startswith("torchvet: ") for _, props, _ in commands)
    assert not any("FORGED" in props.get("file", "") for _, props, _ in commands)
    assert replay_log(proc.stderr) == []
    assert "SENTINEL" not in proc.stdout + proc.stderr


def test_bad_strings_and_floods_are_capped_not_fatal(attacked: dict) -> None:
    units = attacked["units"]
    surrogate = next(r for r in units["surrogate"]["results"] if r["id"] == "forward.runs")
    assert surrogate["status"] == "failed"
    assert "lone \ufffd surrogate, NUL , ESC red," in surrogate["message"]
    flood = next(r for r in units["flood"]["results"] if r["id"] == "forward.runs")
    assert len(flood["message"].encode()) <= MESSAGE_LIMIT
    assert flood["message"].endswith("bytes left out …]")
    output = units["flood"]["output"]
    assert output.startswith("[… ") and output.rstrip().endswith("last line of the flood")
    assert len(output.encode()) < 100_000
    xml = JUnitXml.fromfile(str(attacked["tmp"] / "junit.xml"))
    assert {suite.name for suite in xml} == set(units)


def test_the_reports_replace_a_symlink_instead_of_following_it(attacked: dict) -> None:
    assert attacked["victim"].read_text() == "precious\n"
    junit = attacked["tmp"] / "junit.xml"
    assert not junit.is_symlink() and junit.read_text().startswith("<?xml")
