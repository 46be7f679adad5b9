"""The action's entrypoint without Docker: the ``torchvet run`` command line, the setup
errors (each an ``::error::``, a job summary and ``conclusion=error``), the token-free
re-execution, and the whole pipeline on the hostile fixture."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import pytest

from tests.helpers import ROOT
from tests.helpers.action import copy_fixture
from tests.helpers.workflow import errors, read_outputs, replay_log
from torchvet.action import entrypoint
from torchvet.action.inputs import Inputs, parse_inputs
from torchvet.results import CheckResult, RunReport, Status, UnitReport

PY = "/usr/bin/python3"


def test_cli_command_passes_only_the_given_options() -> None:
    inputs, _ = parse_inputs({"INPUT_CHECKS": "forward", "INPUT_SEED": "0",
                              "INPUT_TIMEOUT": "30", "INPUT_JOBS": "2",
                              "INPUT_SHARD": "1/2", "INPUT_MODELS": "a,b",
                              "INPUT_CHANGED_SINCE": "3f2a9c1"})
    argv = entrypoint.cli_command(PY, inputs, Path("/ws/p"), Path("/tmp/r.json"))
    assert argv == [PY, "-m", "torchvet", "run", "/ws/p", "--no-github", "--json",
                    "/tmp/r.json", "--device", "cpu", "--checks",
                    "forward", "--models", "a,b", "--shard", "1/2", "--changed-since",
                    "3f2a9c1", "--jobs", "2", "--timeout", "30", "--seed", "0"]
    argv = entrypoint.cli_command(PY, Inputs(), Path("/p"), Path("/r.json"))
    assert "--junit" not in argv and "--fail-on" not in argv and "--seed" not in argv


def test_the_cli_error_is_what_the_user_reads() -> None:
    tail = ["noise", "torchvet: error: no torchvet factories found", "  add this"]
    assert entrypoint.cli_error(tail) == "torchvet: error: no torchvet factories found\n  add this"
    assert entrypoint.cli_error([str(i) for i in range(30)]).splitlines()[0] == "15"


# --------------------------------------------------------------------------- setup errors


def run_main(tmp_path: Path, **inputs: str) -> tuple[int, str, dict[str, str], str]:
    workspace = tmp_path / "ws"
    workspace.mkdir(exist_ok=True)
    out, summary = tmp_path / "outputs", tmp_path / "summary"
    env = {"GITHUB_WORKSPACE": str(workspace), "GITHUB_OUTPUT": str(out),
           "GITHUB_STEP_SUMMARY": str(summary), "PATH": "/usr/bin:/bin",
           "GITHUB_TOKEN": "SENTINEL-token",
           **{f"INPUT_{k.upper().replace('_', '-')}": v for k, v in inputs.items()}}
    stream = io.StringIO()
    code = entrypoint.main([], env, stream)
    values = read_outputs(out.read_text(encoding="utf-8")) if out.exists() else {}
    text = summary.read_text(encoding="utf-8") if summary.exists() else ""
    return code, stream.getvalue(), values, text


def test_bad_inputs_exit_2_with_one_error_per_input(tmp_path: Path) -> None:
    code, log, values, summary = run_main(tmp_path, fail_on="sometimes", jobs="-1",
                                          summary="false")
    assert code == 2
    found = errors(log)
    assert [p["title"] for p, _ in found] == ["torchvet: invalid input 'fail-on'",
                                              "torchvet: invalid input 'jobs'"]
    assert "'sometimes' is not one of failure, warning, never" in found[0][1]
    assert values == {"passed": "0", "failed": "0", "errors": "0", "skipped": "0",
                      "not-run": "0", "warnings": "0", "conclusion": "error", "junit-file": "",
                      "failures": ""}
    # the summary says why, even though the inputs turn it off: they may be wrong
    assert summary.startswith("## 💥 torchvet could not run: invalid inputs")
    assert "fail-on: &#39;sometimes&#39; is not one of" in summary


def test_missing_path_names_the_fix(tmp_path: Path) -> None:
    code, log, values, summary = run_main(tmp_path, path="does/not/exist")
    assert code == 2
    [(props, data)] = errors(log)
    assert props["title"] == "torchvet: path not found"
    assert "actions/checkout" in data and "'does/not/exist'" in data
    assert values["conclusion"] == "error" and "path not found" in summary


def test_summary_false_leaves_the_summary_alone(tmp_path: Path) -> None:
    code, _, values, summary = run_main(tmp_path, path="nowhere", summary="false")
    assert (code, values["conclusion"], summary) == (2, "error", "")


def test_a_directory_without_a_project_file_cannot_be_installed(tmp_path: Path) -> None:
    code, log, _, _ = run_main(tmp_path)
    assert code == 2
    [(props, data)] = errors(log)
    assert props["title"] == "torchvet: nothing to install"
    assert "pyproject.toml, setup.py or setup.cfg" in data and "install: none" in data


def test_install_command_runs_in_the_project_with_torch_pinned(tmp_path: Path) -> None:
    workspace = tmp_path / "ws"
    (workspace / "proj").mkdir(parents=True)
    code, log, values, _ = run_main(
        tmp_path, path="proj",
        install_command='pwd; cat "$PIP_CONSTRAINT"; echo "::error::from the command"; '
                        'echo "token=${GITHUB_TOKEN:-none}"; exit 7')
    assert code == 2
    lines = log.splitlines()
    assert lines[0] == "::group::Install the project (install-command)"
    assert str(workspace / "proj") in lines and "token=none" in lines
    assert f"torch=={version('torch')}" in lines
    assert "SENTINEL" not in log
    [(props, data)] = errors(log)  # the command's own ::error:: stayed in the block
    assert props["title"] == "torchvet: install failed"
    assert data.startswith("'pwd; cat") and "(exit 7)" in data
    assert values["conclusion"] == "error"


def test_workspace_is_marked_a_git_safe_directory(tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    log = tmp_path / "git.log"
    fake = tmp_path / "git"
    fake.write_text(f'#!/bin/sh\necho "$@" >> {log}\n')
    fake.chmod(0o755)
    monkeypatch.setattr(entrypoint.shutil, "which",
                        lambda name: str(fake) if name == "git" else None)
    entrypoint.mark_safe_directory(Path("/github/workspace"), Path("/github/workspace"),
                                   Path("/github/workspace/sub"))
    assert log.read_text().splitlines() == [
        "config --system --add safe.directory /github/workspace",
        "config --system --add safe.directory /github/workspace/sub"]


def test_the_image_entrypoint_drops_the_tokens_from_its_own_process(tmp_path: Path
                                                                    ) -> None:
    """entrypoint.py re-executes ``python -m torchvet.action.entrypoint`` without the
    tokens: even the environment of the entrypoint's own process holds none."""
    workspace = tmp_path / "ws"
    workspace.mkdir()
    env = {"PATH": os.environ["PATH"], "GITHUB_WORKSPACE": str(workspace),
           "GITHUB_TOKEN": "SENTINEL-1", "ACTIONS_RUNTIME_TOKEN": "SENTINEL-2",
           "INPUT_INSTALL-COMMAND": 'tr "\\0" "\\n" < /proc/$PPID/environ; exit 9'}
    result = subprocess.run([sys.executable, str(ROOT / "entrypoint.py")], env=env,
                            capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 2, result.stdout + result.stderr
    assert f"GITHUB_WORKSPACE={workspace}" in result.stdout.splitlines()  # it was read
    assert "SENTINEL" not in result.stdout + result.stderr
    [(props, _)] = errors(result.stdout)
    assert props["title"] == "torchvet: install failed"


# --------------------------------------------------------------------------- whole runs


@pytest.mark.slow
def test_no_factories_found_shows_the_snippet(tmp_path: Path) -> None:
    workspace = tmp_path / "ws"
    workspace.mkdir()
    (workspace / "pyproject.toml").write_text('[project]\nname = "empty"\nversion = "0"\n')
    code, log, values, summary = run_main(tmp_path, install="none")
    assert code == 2
    [(props, data)] = errors(log)
    assert props["title"] == "torchvet: no factories found"
    assert '[project.entry-points."torchvet.models"]' in data
    assert values["conclusion"] == "error"
    assert "no factories found" in summary


@pytest.mark.slow
def test_hostile_project_without_docker(tmp_path: Path) -> None:
    """The whole pipeline minus pip (install: none): user code sees no token and cannot
    issue commands; the exception reaches the annotation intact."""
    workspace = copy_fixture("hostile", tmp_path / "ws")
    out = tmp_path / "outputs"
    env = {"GITHUB_WORKSPACE": str(workspace), "GITHUB_OUTPUT": str(out),
           "GITHUB_STEP_SUMMARY": str(tmp_path / "summary"), "GITHUB_TOKEN": "SENTINEL-GT",
           "ACTIONS_RUNTIME_TOKEN": "SENTINEL-ART", "PATH": "/usr/bin:/bin",
           "INPUT_INSTALL": "none", "INPUT_JUNIT-FILE": "j.xml", "INPUT_JSON-FILE": "r.json"}
    stream = io.StringIO()
    code = entrypoint.main([], env, stream)
    log = stream.getvalue()
    assert code == 1, log
    report = (workspace / "r.json").read_text(encoding="utf-8")
    assert "SENTINEL" not in log and "SENTINEL" not in report
    # the user code ran and looked: nothing to find
    for name in ("GITHUB_TOKEN", "ACTIONS_RUNTIME_TOKEN", "GITHUB_OUTPUT"):
        assert f"env {name}=None" in report
    names = [name for name, _, _ in replay_log(log)]
    assert set(names) <= {"group", "endgroup", "error"}
    values = read_outputs(out.read_text(encoding="utf-8"))
    assert "hostile" not in values and values["conclusion"] == "failure"
    assert (workspace / "j.xml").is_file()
    assert log.splitlines()[-1].startswith("torchvet: ") and "exit code 1" in log


# --------------------------------------------------------------------------- issue 10


def test_a_report_never_leaves_the_workspace_by_a_symlink(tmp_path: Path) -> None:
    workspace = tmp_path / "ws"
    (workspace / "reports").mkdir(parents=True)
    (workspace / "out").symlink_to(tmp_path / "elsewhere")
    assert entrypoint.report_target(workspace, "reports/j.xml") == workspace / "reports/j.xml"
    assert entrypoint.report_target(workspace, "new/dir/j.xml") == workspace / "new/dir/j.xml"
    with pytest.raises(OSError, match="outside the workspace"):
        entrypoint.report_target(workspace, "out/j.xml")
    # torchvet docker's absolute path in the file-commands mount: fine without symlinks
    files = tmp_path / "file_commands"
    files.mkdir()
    assert entrypoint.report_target(workspace, str(files / "r.json")) == files / "r.json"
    (tmp_path / "link").symlink_to(files)
    with pytest.raises(OSError, match="holds a symlink"):
        entrypoint.report_target(workspace, str(tmp_path / "link" / "r.json"))


def test_a_report_replaces_a_committed_symlink(tmp_path: Path) -> None:
    workspace = tmp_path / "ws"
    workspace.mkdir()
    victim = tmp_path / "victim"
    victim.write_text("precious")
    (workspace / "torchvet-junit.xml").symlink_to(victim)
    written = entrypoint.write_report(workspace, "torchvet-junit.xml", "<testsuites/>")
    assert written == workspace / "torchvet-junit.xml" and not written.is_symlink()
    assert written.read_text() == "<testsuites/>" and victim.read_text() == "precious"


def test_a_cancellation_the_job_did_not_ask_for_is_an_error() -> None:
    run = RunReport([UnitReport("m", results=[
        CheckResult("forward.runs", Status.PASSED),
        CheckResult("training.loss", Status.CANCELLED, "cancelled")])], interrupted=True)
    entrypoint.discount_forged_cancellation(run)
    assert not run.interrupted
    assert [r.status for r in run.reports[0].results] == [Status.PASSED, Status.ERROR]
    assert "a signal from the project's code" in run.reports[0].results[1].message


def test_the_reexecuted_entrypoint_imports_nothing_from_the_workspace(tmp_path: Path
                                                                      ) -> None:
    """The runner starts the entrypoint in the workspace: its re-execution (root) must
    not put the working directory on sys.path, where a committed tempfile.py waits (the
    project's own ``torchvet run`` may import it: that is the project's code's domain)."""
    workspace = tmp_path / "ws"
    workspace.mkdir()
    imports = tmp_path / "imported-by"
    for name in ("tempfile", "shlex", "json"):
        (workspace / f"{name}.py").write_text(
            f"import sys\nopen({str(imports)!r}, 'a').write(sys.argv[0] + '\\n')\n")
    env = {"PATH": os.environ["PATH"], "GITHUB_WORKSPACE": str(workspace),
           "GITHUB_TOKEN": "SENTINEL-1", "INPUT_INSTALL": "none"}
    result = subprocess.run([sys.executable, str(ROOT / "entrypoint.py")], env=env,
                            cwd=workspace, capture_output=True, text=True, timeout=120,
                            check=False)
    importers = imports.read_text().splitlines() if imports.exists() else []
    assert not [i for i in importers if i.endswith("entrypoint.py")], importers
    assert "SENTINEL" not in result.stdout + result.stderr


IMPORTS_DURING_A_RUN = """
import io, sys
from torchvet.action import entrypoint
before = {m for m in sys.modules if m.split(".")[0] in ("torchvet", "junit_xml")}
code = entrypoint.main([], {"GITHUB_WORKSPACE": sys.argv[1], "PATH": "/usr/bin:/bin",
                            "INPUT_INSTALL": "none", "INPUT_JUNIT-FILE": "j.xml",
                            "INPUT_JSON-FILE": "r.json",
                            "GITHUB_OUTPUT": sys.argv[1] + "/../out"}, io.StringIO())
after = {m for m in sys.modules if m.split(".")[0] in ("torchvet", "junit_xml")}
print(code, sorted(after - before))
"""


@pytest.mark.slow
def test_the_entrypoint_imports_everything_it_needs_before_user_code_runs(
        tmp_path: Path) -> None:
    """A module imported after user code ran could be one the user code rewrote."""
    workspace = copy_fixture("healthy", tmp_path / "ws")
    result = subprocess.run([sys.executable, "-c", IMPORTS_DURING_A_RUN, str(workspace)],
                            capture_output=True, text=True, timeout=600, check=False)
    assert result.stdout.strip() == "0 []", result.stdout[-2000:] + result.stderr[-2000:]
