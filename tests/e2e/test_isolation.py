"""Worker isolation end to end: every way a model can break the worker is reported as an
``error`` for that model only, and nothing already decided is lost."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from junitparser import JUnitXml

from tests.helpers import FIXTURES, ROOT, eventually, restore_sigint, run_cli

FAULTS = FIXTURES / "faults"


def process_gone(pid: int) -> bool:
    """True when ``pid`` no longer runs (a zombie waiting for init counts as gone)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    status = Path(f"/proc/{pid}/status")
    if status.exists():
        state = next((ln for ln in status.read_text().splitlines() if ln.startswith("State:")),
                     "")
        return "Z" in state or "X" in state
    return False


@pytest.fixture(scope="module")
def faults_run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    out = tmp_path_factory.mktemp("faults")
    pid_file = out / "pids"
    started = time.monotonic()
    proc = run_cli("run", str(FAULTS), "--exclude", "sleeper", "--junit",
                   str(out / "junit.xml"), "--json", str(out / "report.json"), "-j", "2",
                   env={"TORCHVET_TEST_PID_FILE": str(pid_file)})
    elapsed = time.monotonic() - started
    report = json.loads((out / "report.json").read_text())
    units = {u["name"]: {r["id"]: r for r in u["results"]} for u in report["reports"]}
    return {"proc": proc, "units": units, "elapsed": elapsed, "out": out, "pid_file": pid_file}


def test_exit_code_is_one_and_healthy_model_is_intact(faults_run: dict) -> None:
    proc = faults_run["proc"]
    assert proc.returncode == 1, proc.stderr
    healthy = faults_run["units"]["healthy"]
    assert {r["status"] for r in healthy.values()} <= {"passed", "skipped"}
    assert healthy["forward.runs"]["status"] == "passed"


def one_error(results: dict) -> dict:
    """The unit's one error (issue 26: a broken unit is one problem); every other
    result is a check it never reached."""
    [error] = [r for r in results.values() if r["status"] == "error"]
    assert {r["status"] for r in results.values() if r is not error} == {"not_run"}
    return error


def test_import_error_is_one_error_for_that_model(faults_run: dict) -> None:
    results = faults_run["units"]["import_error"]
    error = one_error(results)
    assert error["id"] == "unit" and "a_dependency_that_is_not_installed" in error["message"]
    assert error["file"].endswith("faultpkg/broken_import.py") and error["line"] == 3
    assert results["forward.runs"]["message"] == (
        "not run: the unit could not be built (see its error)")


def test_factory_that_raises(faults_run: dict) -> None:
    result = one_error(faults_run["units"]["factory_raises"])
    assert result["id"] == "unit"
    assert "ValueError: the checkpoint path is not configured" in result["message"]
    assert result["file"].endswith("faultpkg/models.py")


def test_factory_returning_a_non_module(faults_run: dict) -> None:
    result = one_error(faults_run["units"]["not_a_module"])
    assert "returned builtins.str" in result["message"]
    assert "nn.Module" in result["message"]


def test_segfault_names_the_signal_once(faults_run: dict) -> None:
    assert "SIGSEGV" in one_error(faults_run["units"]["segfault"])["message"]


def test_os_exit_keeps_what_was_decided(faults_run: dict) -> None:
    results = faults_run["units"]["exits"]
    # forward.shape is the first check to run a new forward (the batch sizes its layout
    # is discovered from): the third forward call exits
    for check in ("forward.runs", "forward.finite", "forward.dtype"):
        assert results[check]["status"] == "passed", results[check]
    assert results["forward.shape"]["status"] == "error"
    assert "exited with code 3 during this check" in results["forward.shape"]["message"]
    assert results["training.loss"]["status"] == "not_run"
    assert "during forward.shape" in results["training.loss"]["message"]


def test_hang_is_killed_with_its_child(faults_run: dict) -> None:
    error = one_error(faults_run["units"]["hang"])
    assert "timed out after 4 s" in error["message"]
    assert "[tool.torchvet.models.hang] timeout" in error["message"]
    worker, child = map(int, faults_run["pid_file"].read_text().split())
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and not (process_gone(worker) and process_gone(child)):
        time.sleep(0.1)
    assert process_gone(worker) and process_gone(child)


def test_whole_run_is_bounded_by_the_timeout(faults_run: dict) -> None:
    assert faults_run["elapsed"] < 60


def test_junit_is_parseable_with_every_unit(faults_run: dict) -> None:
    xml = JUnitXml.fromfile(str(faults_run["out"] / "junit.xml"))
    suites = {suite.name: suite for suite in xml}
    assert set(suites) == set(faults_run["units"])
    segfault = suites["segfault"]  # one errored testcase, the checks skipped as not run
    assert (segfault.errors, segfault.skipped) == (1, len(faults_run["units"]["segfault"]) - 1)
    case = next(c for c in suites["import_error"] if c.name == "unit")
    assert case.classname == "torchvet.import_error"
    assert case._elem.get("file", "").endswith("broken_import.py")
    assert case._elem.get("line") == "3"


def test_terminal_shows_a_dead_unit_as_one_problem(faults_run: dict) -> None:
    stdout = faults_run["proc"].stdout
    assert "ERROR segfault (the unit)" in stdout
    assert stdout.count("SIGSEGV") == 1


def test_interrupt_writes_reports_and_marks_the_rest_cancelled(tmp_path: Path) -> None:
    report = tmp_path / "report.json"
    env = {**os.environ, "NO_COLOR": "1", "TORCHVET_TEST_PID_FILE": str(tmp_path / "pids")}
    env.pop("GITHUB_ACTIONS", None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "torchvet", "run", str(FAULTS), "-k", "healthy,sleeper", "-j", "1",
         "--timeout", "120", "--json", str(report)],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        preexec_fn=restore_sigint,
    )
    assert proc.stdout is not None
    for line in proc.stdout:
        if "healthy (model)" in line:
            break
    deadline = time.monotonic() + 30
    while not (tmp_path / "pids").exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    proc.send_signal(signal.SIGINT)
    proc.communicate(timeout=30)
    assert proc.returncode == 130
    data = json.loads(report.read_text())
    assert data["interrupted"] is True
    units = {u["name"]: u for u in data["reports"]}
    assert {r["status"] for r in units["healthy"]["results"]} <= {"passed", "skipped"}
    assert {r["status"] for r in units["sleeper"]["results"]} == {"cancelled"}
    worker, child = map(int, (tmp_path / "pids").read_text().split())
    assert eventually(lambda: process_gone(worker) and process_gone(child))


def test_sigterm_is_handled_like_an_interrupt(tmp_path: Path) -> None:
    report = tmp_path / "report.json"
    env = {**os.environ, "NO_COLOR": "1", "TORCHVET_TEST_PID_FILE": str(tmp_path / "pids")}
    env.pop("GITHUB_ACTIONS", None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "torchvet", "run", str(FAULTS), "-k", "sleeper", "--timeout", "120",
         "--json", str(report)],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    deadline = time.monotonic() + 60
    while not (tmp_path / "pids").exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    proc.send_signal(signal.SIGTERM)
    proc.communicate(timeout=30)
    assert proc.returncode == 130
    data = json.loads(report.read_text())
    assert {r["status"] for u in data["reports"] for r in u["results"]} == {"cancelled"}


def test_usage_errors_are_annotated_in_github_actions(tmp_path: Path) -> None:
    proc = run_cli("run", str(tmp_path / "missing"), env={"GITHUB_ACTIONS": "true"})
    assert proc.returncode == 2
    assert proc.stdout.startswith("::error title=torchvet::")
    assert "no such directory" in proc.stdout
