"""The action's image end to end: built from the repository's own Dockerfile and run the
way the GitHub Actions runner runs a container action (TESTING.md), on the fixture
repositories under tests/fixtures/action/. The engine and the image come from
tests/e2e/conftest.py.
"""

from __future__ import annotations

import os
import re
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from junitparser import JUnitXml
from ruamel.yaml import YAML

from tests.helpers import ROOT
from tests.helpers.action import copy_fixture, culprit_line
from tests.helpers.workflow import read_outputs, replay_log
from torchvet.reporters import json_report
from torchvet.results import Status

pytestmark = [pytest.mark.docker, pytest.mark.slow]

RUNNER_UID = 1001  # the runner's user on GitHub-hosted machines owns the workspace
SENTINELS = {"GITHUB_TOKEN": "SENTINEL-github-token", "GH_TOKEN": "SENTINEL-gh-token",
             "ACTIONS_RUNTIME_TOKEN": "SENTINEL-runtime-token",
             "ACTIONS_ID_TOKEN_REQUEST_TOKEN": "SENTINEL-oidc-token"}


FAST_PASSED = re.compile(r"^\[1/2\] fast \(model\) +PASSED", re.M)


def action_defaults() -> dict[str, str]:
    """Every input action.yml declares and its default (what the runner passes)."""
    action = YAML(typ="safe").load((ROOT / "action.yml").read_text(encoding="utf-8"))
    return {name: str(spec.get("default", "")) for name, spec in action["inputs"].items()}


@dataclass
class ActionRun:
    code: int
    stdout: str
    stderr: str
    workspace: Path
    outputs: dict[str, str]
    outputs_text: str
    summary: str
    seconds: float

    def file(self, name: str) -> Path:
        return self.workspace / name


@pytest.fixture
def run_action(client: Any, image: str, tmp_path: Path) -> Iterator[Any]:
    """Run the image on a copy of a fixture repository like the runner does:
    ``docker run --workdir /github/workspace -v repo:/github/workspace
    -v files:/github/file_commands -e INPUT_<NAME>... -e GITHUB_*`` with every input
    declared in action.yml (defaults included: torch comes from the index the image's
    torch came from) and the tokens the runner passes."""

    def run(fixture: str, **inputs: str) -> ActionRun:
        workspace = copy_fixture(fixture, tmp_path / "workspace")
        files, home = tmp_path / "file_commands", tmp_path / "home"
        files.mkdir()
        home.mkdir()
        step = uuid.uuid4().hex
        names = {k: f"{k.lower()}_{step}" for k in ("set_output", "step_summary", "set_env",
                                                    "add_path", "save_state")}
        for name in names.values():
            (files / name).touch()
        if os.geteuid() == 0:
            for root in (workspace, files, home):
                subprocess.run(["chown", "-R", f"{RUNNER_UID}:{RUNNER_UID}", str(root)],
                               check=True)
        values = {**action_defaults(), **{k.replace("_", "-"): v for k, v in inputs.items()}}
        environment = {
            **{f"INPUT_{name.upper()}": value for name, value in values.items()},
            "HOME": "/github/home", "GITHUB_ACTIONS": "true", "CI": "true",
            "GITHUB_WORKSPACE": "/github/workspace",
            "GITHUB_OUTPUT": f"/github/file_commands/{names['set_output']}",
            "GITHUB_STEP_SUMMARY": f"/github/file_commands/{names['step_summary']}",
            "GITHUB_ENV": f"/github/file_commands/{names['set_env']}",
            "GITHUB_PATH": f"/github/file_commands/{names['add_path']}",
            "GITHUB_STATE": f"/github/file_commands/{names['save_state']}",
            "GITHUB_REPOSITORY": "octo/models", "GITHUB_SHA": "0123abcd" * 5,
            "GITHUB_SERVER_URL": "https://github.com", "GITHUB_EVENT_NAME": "pull_request",
            "RUNNER_OS": "Linux", "RUNNER_TEMP": "/home/runner/work/_temp",
            "ACTIONS_RUNTIME_URL": "https://pipelines.example/", **SENTINELS,
        }
        started = time.monotonic()
        container = client.containers.run(
            image, detach=True, working_dir="/github/workspace", network_mode="host",
            environment=environment, volumes={
                str(workspace): {"bind": "/github/workspace", "mode": "rw"},
                str(files): {"bind": "/github/file_commands", "mode": "rw"},
                str(home): {"bind": "/github/home", "mode": "rw"}})
        try:
            code = container.wait(timeout=900)["StatusCode"]
            seconds = time.monotonic() - started
            stdout = container.logs(stdout=True, stderr=False).decode("utf-8", "replace")
            stderr = container.logs(stdout=False, stderr=True).decode("utf-8", "replace")
        finally:
            container.remove(force=True)
        outputs_text = (files / names["set_output"]).read_text(encoding="utf-8")
        return ActionRun(
            code=code, stdout=stdout, stderr=stderr, workspace=workspace,
            outputs=read_outputs(outputs_text), outputs_text=outputs_text,
            summary=(files / names["step_summary"]).read_text(encoding="utf-8"),
            seconds=seconds)

    yield run


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
    assert "torchvet: dead_layer · training.gradients" in titles
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
    run = run_action("healthy", torch_version="2.0.1", torch_index_url="file:///nonexistent")
    assert run.code == 2, run.stdout[-3000:]
    commands = assert_safe_log(run)
    assert [c[2] for c in commands if c[0] == "group"] == ["Install torch 2.0.1"]
    [(props, data)] = [(p, d) for name, p, d in commands if name == "error"]
    assert props["title"] == "torchvet: torch install failed"
    assert data.startswith("pip could not install torch==2.0.1 from file:///nonexistent")
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
    gate = workspace / ".gate"
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
        while not ((gate / "started").exists() and FAST_PASSED.search(
                container.logs().decode("utf-8", "replace"))):
            container.reload()
            assert container.status == "running" and time.monotonic() < deadline, (
                container.logs().decode("utf-8", "replace")[-3000:])
            time.sleep(0.2)
        container.stop(timeout=60)
        code = container.wait(timeout=120)["StatusCode"]
        stdout = container.logs(stderr=False).decode("utf-8", "replace")
    finally:
        (gate / "release").touch()  # never leave the unit blocked
        container.remove(force=True)
    assert code == 130, stdout[-3000:]
    assert replay_log(stdout)  # the blocks were closed
    outputs = read_outputs((files / "out").read_text(encoding="utf-8"))
    assert outputs["conclusion"] == "cancelled" and int(outputs["skipped"]) > 0
    assert "the run was interrupted" in (files / "summary").read_text(encoding="utf-8")
    partial = json_report.read(workspace / "report.json")
    assert partial.interrupted
    assert {r.name: r.status for r in partial.reports} == {
        "fast": Status.PASSED, "slow": Status.CANCELLED}
