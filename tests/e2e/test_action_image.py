"""The action's image end to end: built from the repository's own Dockerfile and run the
way the GitHub Actions runner runs a container action (TESTING.md §4: the workspace,
HOME, the workflow directory, the file-command files and the host's Docker socket
mounted), on the fixture repositories under tests/fixtures/action/. The engine and the
image come from tests/e2e/conftest.py.
"""

from __future__ import annotations

import os
import re
import stat
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from junitparser import JUnitXml

from tests.helpers.action import (
    ATTACKS,
    DOCKER_SOCKET,
    RUNNER_UID,
    SENTINELS,
    ActionRun,
    action_runner,
    copy_fixture,
    culprit_line,
    findings,
)
from tests.helpers.mixed import assert_mixed_case
from tests.helpers.workflow import read_outputs, replay_log
from torchvet.reporters import json_report
from torchvet.results import MESSAGE_LIMIT, Status

pytestmark = [pytest.mark.docker, pytest.mark.slow]

FAST_PASSED = re.compile(r"^\[1/2\] fast \(model\) +PASSED", re.M)
SLOW_STARTED = "blocking: the slow unit runs"  # tests/fixtures/action/blocking
@pytest.fixture
def run_action(client: Any, image: str, tmp_path: Path) -> Iterator[Any]:
    yield action_runner(client, image, tmp_path)


def assert_safe_log(run: ActionRun) -> list[tuple[str, dict[str, str], str]]:
    """Only torchvet's own commands reach the runner; no token reaches the log."""
    assert replay_log(run.stderr) == [], run.stderr
    commands = replay_log(run.stdout)
    for name, props, data in commands:
        assert name in ("group", "endgroup", "error", "warning"), (name, data)
        if name in ("error", "warning"):
            assert props.get("title", "").startswith("torchvet: "), (name, props, data)
            assert data not in ("fake", "fake warning", "fake from the build")
    for secret in SENTINELS.values():
        for text in (run.stdout, run.stderr, run.summary, run.outputs_text):
            assert secret not in text
    return commands


def assert_workspace_owned_by_runner(run: ActionRun) -> None:
    if os.geteuid() != 0:
        return
    root_owned = [str(p.relative_to(run.workspace)) for p in [run.workspace,
                                                               *run.workspace.rglob("*")]
                  if p.lstat().st_uid != RUNNER_UID]
    assert root_owned == [], "files left to root in the workspace"


# --------------------------------------------------------------------------- the cases


def test_healthy_repository_passes(run_action: Any) -> None:
    run = run_action("healthy")
    print(f"\nhealthy fixture: {run.seconds:.1f}s")
    assert run.code == 0, run.stdout[-5000:] + run.stderr[-2000:]
    commands = assert_safe_log(run)
    assert [c[0] for c in commands if c[0] not in ("group", "endgroup")] == []
    assert [c[2] for c in commands if c[0] == "group"] == [
        "Install the project: pip install .", "torchvet run"]
    out = run.outputs
    assert int(out["passed"]) >= 20 and out["failed"] == out["errors"] == "0"
    assert out["conclusion"] == "success" and out["failures"] == ""
    assert out["junit-file"] == "torchvet-junit.xml"
    assert run.summary.startswith("## ✅ torchvet: ")
    assert "| mlp | model | ✅ passed |" in run.summary
    assert "| points | dataset | ✅ passed |" in run.summary
    xml = JUnitXml.fromfile(str(run.file("torchvet-junit.xml")))
    suites = {suite.name: suite for suite in xml}
    assert set(suites) == {"mlp", "classifier", "points"}
    assert sum(s.failures + s.errors for s in suites.values()) == 0
    assert sum(s.tests for s in suites.values()) == int(out["passed"]) + int(out["skipped"])
    assert_workspace_owned_by_runner(run)


def test_buggy_repository_fails_on_the_culprit_line(run_action: Any) -> None:
    run = run_action("buggy")
    assert run.code == 1, run.stdout[-5000:]
    line = culprit_line(run.file("src/buggy_models/models.py"))
    annotation = f"::error file=src/buggy_models/models.py,line={line},"
    assert any(text.startswith(annotation) for text in run.stdout.splitlines()), run.stdout
    commands = assert_safe_log(run)
    titles = [props["title"] for name, props, _ in commands if name == "error"]
    # both of the dead layer's problems share its line's one annotation
    assert "torchvet: dead_layer · training.gradients, training.update" in titles
    assert run.outputs["conclusion"] == "failure" and int(run.outputs["failed"]) >= 1
    assert "dead_layer:training.gradients" in run.outputs["failures"].splitlines()
    assert run.summary.startswith("## ❌ torchvet: ") and "this step fails" in run.summary
    assert "<code>training.gradients</code> (failed)" in run.summary
    assert f"<code>src/buggy_models/models.py:{line}</code>" in run.summary
    xml = JUnitXml.fromfile(str(run.file("torchvet-junit.xml")))
    cases = {(suite.name, case.name): case for suite in xml for case in suite}
    failing = cases[("dead_layer", "training.gradients")]
    assert failing.result and failing.result[0].message.startswith("unused_proj")
    assert failing._elem.get("file") == "src/buggy_models/models.py"
    assert failing._elem.get("line") == str(line)
    assert all(not c.result or c.is_skipped for (s, _), c in cases.items() if s == "fine")


def test_dead_units_are_one_error_each_and_the_real_failure_keeps_its_annotation(
        run_action: Any) -> None:
    """Issue 26: two units dying while being built (a signal, an exit code) and a real
    failure; the CLI test of the same fixture is in tests/github/test_reporter.py."""
    run = run_action("mixed", json_file="torchvet.json")
    assert run.code == 1, run.stdout[-5000:]
    assert_mixed_case(assert_safe_log(run), run.outputs, run.summary,
                      run.file("torchvet-junit.xml"), run.file("torchvet.json"),
                      culprit_line(run.file("src/mixed_models/models.py")))


def test_fail_on_never_reports_failures_and_exits_0(run_action: Any) -> None:
    run = run_action("buggy", fail_on="never", junit_file="reports/junit.xml")
    assert run.code == 0, run.stdout[-5000:]
    assert any(name == "error" for name, _, _ in assert_safe_log(run))
    assert run.outputs["conclusion"] == "failure" and int(run.outputs["failed"]) >= 1
    assert run.outputs["junit-file"] == "reports/junit.xml"
    assert run.file("reports/junit.xml").is_file()
    assert "this step passes" in run.summary


def test_hostile_repository_cannot_issue_commands_or_read_tokens(run_action: Any) -> None:
    run = run_action("hostile", json_file="report.json")
    assert run.code == 1, run.stdout[-5000:]
    commands = assert_safe_log(run)
    # user code printed these many times, inside the blocks only
    assert run.stdout.count("::set-output name=conclusion::success") >= 2
    assert {name for name, _, _ in commands} == {"group", "endgroup", "error"}
    source = "src/hostile_models/models.py"
    line = str(culprit_line(run.file(source)))
    errors = [(props, data) for name, props, data in commands if name == "error"]
    assert errors and all((p["file"], p["line"]) == (source, line) for p, _ in errors)
    forward = next(data for props, data in errors
                   if props["title"] == "torchvet: hostile · forward.runs")
    assert forward.endswith(
        "ValueError: hostile failure: 100% broken, really\nsecond line: a, b, c\r\n"
        "::error::from the exception\nliteral %0A and %25 and %3A stay literal")
    # the outputs file holds torchvet's outputs only
    assert "hostile" not in run.outputs and "written-by-user-code" not in run.outputs_text
    assert run.outputs["conclusion"] == "failure"
    assert list(run.outputs).count("conclusion") == 1
    assert run.outputs_text.count("conclusion=") == 1
    # the user code looked for tokens and file-command paths and found none
    report = run.file("report.json").read_text(encoding="utf-8")
    for name in (*SENTINELS, "GITHUB_OUTPUT", "GITHUB_STEP_SUMMARY", "GITHUB_ENV"):
        assert f"env {name}=None" in report
    assert not any(secret in report for secret in SENTINELS.values())
    assert "<script" not in run.summary and "::error::fake" in run.summary
    assert_workspace_owned_by_runner(run)


def test_failed_install_is_a_clear_error(run_action: Any) -> None:
    run = run_action("install-fails")
    assert run.code == 2, run.stdout[-5000:]
    commands = assert_safe_log(run)
    errors = [(props, data) for name, props, data in commands if name == "error"]
    assert len(errors) == 1
    props, data = errors[0]
    assert props["title"] == "torchvet: install failed"
    assert data.startswith("'pip install .' failed in '.' (exit 1).")
    assert "this build fails on purpose (missing libfoo)" in data  # pip's last lines
    assert "::group::torchvet run" not in run.stdout  # nothing ran after the failure
    assert run.outputs["conclusion"] == "error"
    assert "torchvet could not run: install failed" in run.summary


def test_bad_inputs_and_an_unreachable_torch_fail_before_any_user_code(
        run_action: Any) -> None:
    run = run_action("hostile", fail_on="sometimes", shard="5/4")
    assert run.code == 2
    errors = [(p["title"], d) for name, p, d in assert_safe_log(run) if name == "error"]
    assert [t for t, _ in errors] == ["torchvet: invalid input 'fail-on'",
                                      "torchvet: invalid input 'shard'"]
    assert "::group::" not in run.stdout and run.outputs["conclusion"] == "error"


def test_a_torch_version_that_cannot_be_installed_is_a_clear_error(run_action: Any) -> None:
    run = run_action("healthy", torch_version="2.1.2", torch_index_url="file:///nonexistent")
    assert run.code == 2, run.stdout[-3000:]
    commands = assert_safe_log(run)
    assert [c[2] for c in commands if c[0] == "group"] == ["Install torch 2.1.2"]
    [(props, data)] = [(p, d) for name, p, d in commands if name == "error"]
    assert props["title"] == "torchvet: torch install failed"
    assert data.startswith("pip could not install torch==2.1.2 from file:///nonexistent")
    assert run.outputs["conclusion"] == "error"


def test_cancelling_the_job_reports_what_finished(client: Any, image: str,
                                                  tmp_path: Path) -> None:
    """`docker stop` (a cancelled job) sends SIGTERM to the entrypoint, PID 1, while a unit
    is provably running (it blocks until released): the entrypoint passes it on, torchvet
    keeps what finished and marks the rest cancelled, the outputs say so, exit 130."""
    workspace = copy_fixture("blocking", tmp_path / "workspace")
    files = tmp_path / "files"
    files.mkdir()
    (files / "out").touch()
    (files / "summary").touch()
    container = client.containers.run(
        image, detach=True, working_dir="/github/workspace", network_mode="host",
        environment={"GITHUB_ACTIONS": "true", "GITHUB_WORKSPACE": "/github/workspace",
                     "GITHUB_OUTPUT": "/github/file_commands/out",
                     "GITHUB_STEP_SUMMARY": "/github/file_commands/summary",
                     "INPUT_CHECKS": "forward", "INPUT_JSON-FILE": "report.json"},
        volumes={str(workspace): {"bind": "/github/workspace", "mode": "rw"},
                 str(files): {"bind": "/github/file_commands", "mode": "rw"}})
    try:
        deadline = time.monotonic() + 600
        while not (SLOW_STARTED in (log := container.logs().decode("utf-8", "replace"))
                   and FAST_PASSED.search(log)):
            container.reload()
            assert container.status == "running" and time.monotonic() < deadline, (
                container.logs().decode("utf-8", "replace")[-3000:])
            time.sleep(0.2)
        container.stop(timeout=60)
        code = container.wait(timeout=120)["StatusCode"]
        stdout = container.logs(stderr=False).decode("utf-8", "replace")
    finally:
        container.remove(force=True)  # the unit waits in the container's own copy
    assert code == 130, stdout[-3000:]
    assert replay_log(stdout)  # the blocks were closed
    outputs = read_outputs((files / "out").read_text(encoding="utf-8"))
    assert outputs["conclusion"] == "cancelled" and int(outputs["skipped"]) > 0
    assert "the run was interrupted" in (files / "summary").read_text(encoding="utf-8")
    partial = json_report.read(workspace / "report.json")
    assert partial.interrupted
    assert {r.name: r.status for r in partial.reports} == {
        "fast": Status.PASSED, "slow": Status.CANCELLED}


# --------------------------------------------------------------------------- attacks


def prepare_attacks(workspace: Path, files: Path, names: dict[str, str]) -> None:
    """What the attacking pull request finds: a committed symlink at each report path,
    the checkout's token in .git/config, the real file-command paths (as if guessed), and
    a careless runner whose file-command files and directory anyone may write."""
    (workspace / "torchvet-junit.xml").symlink_to("/github/home/planted-junit.xml")
    (workspace / "report.json").symlink_to("/github/workflow/planted.json")
    (workspace / ".git").mkdir()
    (workspace / ".git" / "config").write_text(
        '[http "https://github.com/"]\n\textraheader = AUTHORIZATION: basic '
        "SENTINEL-checkout-token\n", encoding="utf-8")
    (workspace / "attack-targets.txt").write_text(
        "".join(f"/github/file_commands/{name}\n" for name in names.values()))
    for name in names.values():
        (files / name).chmod(0o666)
    files.chmod(0o777)


ATTACKS_EXPECTED = {
    "install environ", "install file command", "install torchvet files",
    "install docker socket", "install daemon", "environ", "file command", "workspace",
    "runner home", "workflow", "torchvet files", "pid 1", "docker socket",
    "git credentials", "unit daemon"}
SANDBOX_PATHS = ("/usr/local/lib/python3", "/usr/lib/python3", "/opt/torchvet",
                 "/usr/local/bin", "/usr/bin")


@pytest.fixture(scope="module")
def attacked(client: Any, image: str, tmp_path_factory: pytest.TempPathFactory
             ) -> ActionRun:
    """One run of the attacks fixture, read by the tests below."""
    run = action_runner(client, image, tmp_path_factory.mktemp("attacks"))(
        "attacks", prepare=prepare_attacks, jobs="1", json_file="report.json",
        install_command="python attack_install.py && pip install .")
    print(f"\nattacks fixture: {run.seconds:.1f}s, log {len(run.stdout) / 1e6:.1f} MB")
    return run


def test_no_attack_of_the_pull_request_works(attacked: ActionRun) -> None:
    """Every attack ran (as the unprivileged account) and every one was blocked."""
    report = json_report.read(attacked.file("report.json"))
    snoop = next(u for u in report.reports if u.name == "snoop")
    found = findings(snoop.output)
    assert {f["attack"] for f in found} >= ATTACKS_EXPECTED, found
    assert [f for f in found if f["blocked"] is False] == []
    docker = [f for f in found if f["attack"] == "docker socket"]
    if Path(DOCKER_SOCKET).exists():
        assert DOCKER_SOCKET in [f["target"] for f in docker]  # it was there, closed
    daemons = {f["attack"]: f["detail"] for f in found if "daemon" in f["attack"]
               and f["blocked"] is not None}
    assert daemons == {"install daemon": "gone", "unit daemon": "gone"}
    environ = {str(f["target"]).split(" ")[0]: f for f in found if f["attack"] == "environ"}
    assert environ["/proc/1/environ"]["detail"] == "PermissionError"  # PID 1: root's
    assert len(environ) >= 4  # PID 1, torchvet run, the fork server, the worker at least
    assert "torchvet: the project's code runs as 'torchvet' (uid 10001)" in attacked.stdout


def test_the_log_holds_only_torchvets_commands(attacked: ActionRun) -> None:
    commands = assert_safe_log(attacked)
    assert {name for name, _, _ in commands} == {"group", "endgroup", "error"}
    for _, props, data in commands:
        assert "FORGED" not in props.get("file", "") and "forged" not in data.lower()
    # the attacks printed their forged commands (inside the blocks) and the daemons ran
    assert "::error file=FORGED.py,line=1::printed by the install step" in attacked.stdout
    assert "from the unit daemon" in attacked.stdout
    # 120 MB printed by the flood unit: the log keeps at most 8 MiB of each step
    assert len(attacked.stdout.encode()) < 10_000_000
    assert "more bytes of output left out of the log" in attacked.stdout


def test_the_outputs_and_file_commands_hold_only_what_torchvet_wrote(
        attacked: ActionRun) -> None:
    assert attacked.code == 1, attacked.stdout[-3000:]
    assert set(attacked.outputs) == {"passed", "failed", "errors", "skipped", "not-run",
                                     "warnings", "conclusion", "junit-file", "failures"}
    assert attacked.outputs["conclusion"] == "failure"
    assert attacked.outputs_text.count("conclusion=") == 1
    for name in ("set_env", "add_path", "save_state"):
        assert attacked.command_file(name).read_bytes() == b""
    # the careless modes are back as they were once the project's code is gone
    assert stat.S_IMODE(attacked.files.stat().st_mode) == 0o777
    assert stat.S_IMODE(attacked.workspace.stat().st_mode) & 0o005 == 0o005
    assert "SENTINEL" not in attacked.summary + attacked.outputs_text


def test_the_honest_units_report_is_complete_and_correct(attacked: ActionRun) -> None:
    report = json_report.read(attacked.file("report.json"))
    assert not report.interrupted
    units = {u.name: u for u in report.reports}
    assert set(units) == {"honest_a", "honest_b", "daemon", "flood", "signals", "snoop",
                          "surrogate"}
    for name in ("honest_a", "honest_b"):
        results = units[name].results
        assert {r.status for r in results} <= {Status.PASSED, Status.SKIPPED}
        assert {"forward.runs", "training.loss"} <= {r.id for r in results}
    assert [r.id for r in units["honest_a"].results] == [
        r.id for r in units["honest_b"].results]
    signals = units["signals"].results
    [error] = [r for r in signals if r.status is Status.ERROR]  # said once
    assert "sent SIG" in error.message and "a unit cannot stop the run" in error.message
    assert {r.status for r in signals} <= {Status.ERROR, Status.NOT_RUN}
    surrogate = next(r for r in units["surrogate"].results if r.id == "forward.runs")
    assert "lone \ufffd surrogate" in surrogate.message and "\x00" not in surrogate.message
    flood = next(r for r in units["flood"].results if r.id == "forward.runs")
    assert len(flood.message.encode()) <= MESSAGE_LIMIT and "bytes left out" in flood.message
    assert units["flood"].output.rstrip().endswith("last line of the flood")
    xml = JUnitXml.fromfile(str(attacked.file("torchvet-junit.xml")))
    suites = {suite.name: suite for suite in xml}
    assert set(suites) == set(units)
    assert suites["honest_a"].failures + suites["honest_a"].errors == 0
    failures = attacked.outputs["failures"].splitlines()
    assert "signals:unit" in failures and not any("honest" in f for f in failures)


def test_the_workspace_and_the_image_are_untouched(attacked: ActionRun) -> None:
    workspace = attacked.workspace
    for name in ("torchvet-junit.xml", "report.json"):  # the symlinks were replaced
        assert not attacked.file(name).is_symlink() and attacked.file(name).is_file()
    assert not (attacked.home / "planted-junit.xml").exists()
    assert not (attacked.workflow / "planted.json").exists()
    assert (attacked.workflow / "event.json").read_text() == '{"action": "opened"}\n'
    assert sorted(p.name for p in workspace.iterdir()) == sorted(
        [*(p.name for p in ATTACKS.iterdir()), ".git", "attack-targets.txt",
         "torchvet-junit.xml", "report.json"])
    assert (workspace / "pyproject.toml").read_text() == (ATTACKS / "pyproject.toml").read_text()
    assert "SENTINEL-checkout-token" in (workspace / ".git" / "config").read_text()
    assert [p for p in attacked.changed if p.startswith(SANDBOX_PATHS)] == []
    assert_workspace_owned_by_runner(attacked)


@pytest.mark.parametrize("project", ["newline", "nul", "slash"])
def test_a_bad_entry_point_name_is_a_clear_error(run_action: Any, project: str) -> None:
    run = run_action("attacks", path=f"badnames/{project}", install="none")
    assert run.code == 2, run.stdout[-3000:]
    commands = assert_safe_log(run)
    [(props, data)] = [(p, d) for name, p, d in commands if name == "error"]
    assert props["title"] == "torchvet: configuration error"
    assert "an entry point name may hold only letters, digits" in data
    assert "torchvet.models" in data and "FORGED" not in props.get("file", "")
    assert run.outputs["conclusion"] == "error"
