"""The action's entrypoint without Docker: inputs, pip command lines, the environment of
user code, the relay of untrusted output, and the setup errors."""

from __future__ import annotations

import importlib
import io
import shutil
import sys
from importlib.metadata import version
from pathlib import Path

import pytest
from test_github_reporter import read_outputs, replay_log

from conftest import FIXTURES, ROOT

ep = importlib.import_module("torchvet.action.entrypoint")
PY = "/usr/bin/python3"


# --------------------------------------------------------------------------- inputs


def test_inputs_are_read_in_both_spellings_trimmed_with_defaults() -> None:
    assert ep.get_input({"INPUT_TORCH-VERSION": " 2.4.1 \n"}, "torch-version") == "2.4.1"
    assert ep.get_input({"INPUT_TORCH_VERSION": "2.4"}, "torch-version") == "2.4"
    # the runner passes every declared input; an empty hyphenated one defers to the other
    assert ep.get_input({"INPUT_TORCH-VERSION": "", "INPUT_TORCH_VERSION": "2.3"},
                        "torch-version") == "2.3"
    assert ep.get_input({"INPUT_TORCH-VERSION": "2.5", "INPUT_TORCH_VERSION": "2.3"},
                        "torch-version") == "2.5"
    assert ep.get_input({}, "junit-file") == "torchvet-junit.xml"
    assert ep.get_input({"INPUT_FAIL-ON": "   "}, "fail-on") == ""


def test_all_inputs_parse() -> None:
    env = {
        "INPUT_PATH": "sub/project", "INPUT_INSTALL": "-e '.[test]' --no-deps",
        "INPUT_TORCH-VERSION": "2.4", "INPUT_TORCH-INDEX-URL": "https://example.org/whl",
        "INPUT_MODELS": "resnet*\nvit_*", "INPUT_EXCLUDE": "big, huge", "INPUT_CHECKS":
        "forward,training\n-data.workers", "INPUT_DEVICE": "auto", "INPUT_FAIL-ON": "warning",
        "INPUT_JUNIT-FILE": "reports/j.xml", "INPUT_JSON-FILE": "reports/r.json",
        "INPUT_JOBS": "4", "INPUT_TIMEOUT": "90.5", "INPUT_SEED": "7", "INPUT_SHARD": "2/3",
        "INPUT_CHANGED-SINCE": "origin/main",
        "INPUT_ANNOTATIONS": "false", "INPUT_SUMMARY": "True",
    }
    inputs, errors = ep.parse_inputs(env)
    assert errors == []
    assert inputs == ep.Inputs(
        path="sub/project", install=["-e", ".[test]", "--no-deps"], install_command="",
        torch_version="2.4", torch_index_url="https://example.org/whl",
        models="resnet*,vit_*", exclude="big,huge", checks="forward,training,-data.workers",
        device="auto", fail_on="warning", junit_file="reports/j.xml",
        json_file="reports/r.json", jobs=4, timeout=90.5, seed=7, shard="2/3",
        changed_since="origin/main", annotations=False, summary=True)


def test_defaults_match_action_yml() -> None:
    from ruamel.yaml import YAML

    action = YAML(typ="safe").load((ROOT / "action.yml").read_text(encoding="utf-8"))
    declared = {name: str(spec.get("default", "")) for name, spec in action["inputs"].items()}
    assert set(declared) == set(ep.DEFAULTS)
    for name, default in declared.items():
        if name == "torch-index-url":
            assert default == ep.DEFAULT_TORCH_INDEX
        else:
            assert default == ep.DEFAULTS[name], name
    inputs, errors = ep.parse_inputs({f"INPUT_{k.upper()}": v for k, v in declared.items()})
    assert errors == [] and inputs == ep.Inputs()


def test_none_disables_install_and_reports() -> None:
    inputs, errors = ep.parse_inputs({"INPUT_INSTALL": "none", "INPUT_JUNIT-FILE": "none"})
    assert errors == [] and inputs.install is None and inputs.junit_file is None


@pytest.mark.parametrize(("name", "value", "fragment"), [
    ("fail-on", "always", "not one of failure, warning, never"),
    ("device", "tpu", "not one of cpu, cuda, auto"),
    ("torch-version", "latest", "not a torch version"),
    ("torch-version", "2.4; rm -rf /", "not a torch version"),
    ("torch-index-url", "download.pytorch.org/whl/cpu", "not an http(s) or file URL"),
    ("jobs", "0", "not a positive integer"),
    ("jobs", "two", "not a positive integer"),
    ("timeout", "-5", "not a positive number"),
    ("timeout", "nan", "not a positive number"),
    ("seed", "-1", "not a non-negative integer"),
    ("shard", "3/2", "not i/n"),
    ("shard", "1-2", "not i/n"),
    ("changed-since", "--output=/etc/passwd", "not a git ref"),
    ("changed-since", "main; echo", "not a git ref"),
    ("annotations", "yes", "not a boolean"),
    ("summary", "on", "not a boolean"),
    ("install", "'.[test]", "check the quotes"),
])
def test_bad_input_values_are_named(name: str, value: str, fragment: str) -> None:
    _, errors = ep.parse_inputs({f"INPUT_{name.upper()}": value})
    assert [e.name for e in errors] == [name]
    assert fragment in str(errors[0])


def test_every_bad_input_is_reported_at_once() -> None:
    _, errors = ep.parse_inputs({"INPUT_FAIL-ON": "x", "INPUT_JOBS": "x", "INPUT_SEED": "x"})
    assert sorted(e.name for e in errors) == ["fail-on", "jobs", "seed"]
    _, errors = ep.parse_inputs({"INPUT_INSTALL": "-e .[dev]",
                                 "INPUT_INSTALL-COMMAND": "make install"})
    assert [e.name for e in errors] == ["install-command"]


# --------------------------------------------------------------------------- pip


def test_torch_install_command_uses_the_cpu_index() -> None:
    assert ep.torch_install_command(PY, "2.4.1", ep.DEFAULT_TORCH_INDEX) == [
        PY, "-m", "pip", "install", "--index-url", "https://download.pytorch.org/whl/cpu",
        "torch==2.4.1"]
    assert ep.torch_install_command(PY, "2.4", "https://i")[-1] == "torch==2.4.*"
    assert ep.torch_install_command(PY, "2.5.0+cpu", "https://i")[-1] == "torch==2.5.0+cpu"


@pytest.mark.parametrize(("installed", "requested", "matches"), [
    ("2.13.0+cpu", "", True),
    ("2.13.0+cpu", "2.13", True),
    ("2.13.0+cpu", "2.13.0", True),
    ("2.13.0+cpu", "2.13.0+cpu", True),
    ("2.13.0+cpu", "2.1", False),
    ("2.13.0+cpu", "2.13.1", False),
    ("2.13.0", "2.13.0+cpu", False),
    ("", "2.4", False),
])
def test_torch_version_comparison(installed: str, requested: str, matches: bool) -> None:
    assert ep.torch_matches(installed, requested) is matches


def test_project_install_pins_the_installed_torch(tmp_path: Path) -> None:
    assert ep.constraints_text("2.13.0+cpu") == "torch==2.13.0+cpu\n"
    argv = ep.project_install_command(PY, [".[test]"], "/tmp/c.txt", ep.DEFAULT_TORCH_INDEX)
    assert argv == [PY, "-m", "pip", "install", "--constraint", "/tmp/c.txt",
                    "--extra-index-url", "https://download.pytorch.org/whl/cpu", ".[test]"]
    # PyPI is already pip's index: no extra index then
    argv = ep.project_install_command(PY, ["."], "/c", "https://pypi.org/simple")
    assert argv == [PY, "-m", "pip", "install", "--constraint", "/c", "."]


def test_cli_command_passes_only_the_given_options(tmp_path: Path) -> None:
    inputs, _ = ep.parse_inputs({"INPUT_CHECKS": "forward", "INPUT_SEED": "0",
                                 "INPUT_TIMEOUT": "30", "INPUT_JOBS": "2",
                                 "INPUT_SHARD": "1/2", "INPUT_MODELS": "a,b",
                                 "INPUT_CHANGED_SINCE": "3f2a9c1"})
    argv = ep.cli_command(PY, inputs, Path("/ws/p"), Path("/tmp/r.json"), Path("/ws/j.xml"))
    assert argv == [PY, "-m", "torchvet", "run", "/ws/p", "--no-github", "--json",
                    "/tmp/r.json", "--device", "cpu", "--junit", "/ws/j.xml", "--checks",
                    "forward", "--models", "a,b", "--shard", "1/2", "--changed-since",
                    "3f2a9c1", "--jobs", "2",
                    "--timeout", "30", "--seed", "0"]
    argv = ep.cli_command(PY, ep.Inputs(), Path("/p"), Path("/r.json"), None)
    assert "--junit" not in argv and "--fail-on" not in argv and "--seed" not in argv


@pytest.mark.parametrize(("args", "needs"), [
    (["."], True), (["-e", "."], True), ([".[test]"], True), (["./"], True),
    (["-r", "requirements.txt"], False), (["mypkg==1.0"], False), (None, False)])
def test_which_installs_need_a_project_file(args: list[str] | None, needs: bool) -> None:
    assert ep.needs_project_files(args) is needs


# --------------------------------------------------------------------------- environment


def test_user_code_gets_no_tokens_file_commands_or_inputs() -> None:
    env = {
        "GITHUB_TOKEN": "t1", "GH_TOKEN": "t2", "ACTIONS_RUNTIME_TOKEN": "t3",
        "ACTIONS_ID_TOKEN_REQUEST_TOKEN": "t4", "ACTIONS_ID_TOKEN_REQUEST_URL": "u",
        "actions_runtime_token": "t5", "GITHUB_OUTPUT": "/f/o", "GITHUB_STEP_SUMMARY": "/f/s",
        "GITHUB_ENV": "/f/e", "GITHUB_PATH": "/f/p", "GITHUB_STATE": "/f/st",
        "INPUT_PATH": ".",
        "GITHUB_WORKSPACE": "/github/workspace", "GITHUB_ACTIONS": "true", "HOME": "/h",
        "PATH": "/usr/bin", "ACTIONS_CACHE_URL": "https://cache", "HF_TOKEN": "hf",
    }
    clean = ep.user_code_env(env, EXTRA="1")
    assert clean == {"GITHUB_WORKSPACE": "/github/workspace", "GITHUB_ACTIONS": "true",
                     "HOME": "/h", "PATH": "/usr/bin", "ACTIONS_CACHE_URL": "https://cache",
                     "HF_TOKEN": "hf", "EXTRA": "1"}
    # the entrypoint itself keeps the file-command paths, never the tokens
    own = ep.without_secrets(env)
    assert "GITHUB_OUTPUT" in own and not any("TOKEN" in k.upper() for k in own
                                              if k not in ("HF_TOKEN",))


# --------------------------------------------------------------------------- relay


def test_untrusted_output_stays_inside_the_stop_commands_block(tmp_path: Path) -> None:
    """Commands printed by the child (and by a grandchild that outlives it) never reach
    the log outside the block; the block closes on a line of its own."""
    script = tmp_path / "noisy.py"
    script.write_text(
        "import os, subprocess, sys, time\n"
        "print('::set-output name=conclusion::success', flush=True)\n"
        "print('::error::fake', file=sys.stderr, flush=True)\n"
        "print('::add-mask::x\\r::error::after a carriage return', flush=True)\n"
        "subprocess.Popen([sys.executable, '-c', 'import time\\n'\n"
        "    'time.sleep(0.5)\\nprint(\"::error::late\", flush=True)'])\n"
        "sys.stdout.write('no newline ::error::x')\n"
        "sys.stdout.flush()\n"
        "sys.exit(3)\n", encoding="utf-8")
    stream = io.StringIO()
    console = ep.Console(stream)
    outcome = ep.run_untrusted(console, "Noisy: ::error::in the title", [sys.executable,
                               str(script)], cwd=tmp_path, env={"PATH": "/usr/bin"})
    log = stream.getvalue()
    assert outcome.returncode == 3
    assert "::error::fake" in log and "no newline ::error::x" in outcome.tail[-1]
    commands = replay_log(log)
    assert [(name, data) for name, _, data in commands] == [
        ("group", "Noisy: ::error::in the title"), ("endgroup", "")]
    lines = log.splitlines()
    assert lines[1].startswith("::stop-commands::") and lines[-1] == "::endgroup::"
    assert lines[-2] == "::" + lines[1].split("::")[2] + "::"
    import time
    time.sleep(1)
    assert "::error::late" not in stream.getvalue()


def test_a_program_that_cannot_start_closes_its_block(tmp_path: Path) -> None:
    stream = io.StringIO()
    outcome = ep.run_untrusted(ep.Console(stream), "x", ["/nonexistent/tool"], cwd=tmp_path,
                               env={})
    assert outcome.returncode == 127
    assert [c[0] for c in replay_log(stream.getvalue())] == ["group", "endgroup"]


# --------------------------------------------------------------------------- setup errors


def _main(tmp_path: Path, **inputs: str) -> tuple[int, str, dict[str, str], str]:
    workspace = tmp_path / "ws"
    workspace.mkdir(exist_ok=True)
    out, summary = tmp_path / "outputs", tmp_path / "summary"
    env = {"GITHUB_WORKSPACE": str(workspace), "GITHUB_OUTPUT": str(out),
           "GITHUB_STEP_SUMMARY": str(summary), "PATH": "/usr/bin:/bin",
           "GITHUB_TOKEN": "SENTINEL-token",
           **{f"INPUT_{k.upper().replace('_', '-')}": v for k, v in inputs.items()}}
    stream = io.StringIO()
    code = ep.main([], env, stream)
    values = read_outputs(out.read_text(encoding="utf-8")) if out.exists() else {}
    text = summary.read_text(encoding="utf-8") if summary.exists() else ""
    return code, stream.getvalue(), values, text


def _errors(log: str) -> list[tuple[dict[str, str], str]]:
    return [(props, data) for name, props, data in replay_log(log) if name == "error"]


def test_bad_inputs_exit_2_with_one_error_per_input(tmp_path: Path) -> None:
    code, log, values, summary = _main(tmp_path, fail_on="sometimes", jobs="-1")
    assert code == 2
    errors = _errors(log)
    assert [p["title"] for p, _ in errors] == ["torchvet: invalid input 'fail-on'",
                                               "torchvet: invalid input 'jobs'"]
    assert "'sometimes' is not one of failure, warning, never" in errors[0][1]
    assert values["conclusion"] == "error" and values["passed"] == "0"
    assert "torchvet could not run" in summary


def test_missing_path_names_the_fix(tmp_path: Path) -> None:
    code, log, values, _ = _main(tmp_path, path="does/not/exist")
    assert code == 2
    [(props, data)] = _errors(log)
    assert props["title"] == "torchvet: path not found"
    assert "actions/checkout" in data and "'does/not/exist'" in data
    assert values["conclusion"] == "error"


def test_a_directory_without_a_project_file_cannot_be_installed(tmp_path: Path) -> None:
    code, log, _, _ = _main(tmp_path)
    assert code == 2
    [(props, data)] = _errors(log)
    assert props["title"] == "torchvet: nothing to install"
    assert "pyproject.toml, setup.py or setup.cfg" in data and "install: none" in data


@pytest.mark.slow
def test_no_factories_found_shows_the_snippet(tmp_path: Path) -> None:
    workspace = tmp_path / "ws"
    workspace.mkdir()
    (workspace / "pyproject.toml").write_text('[project]\nname = "empty"\nversion = "0"\n')
    code, log, values, summary = _main(tmp_path, install="none")
    assert code == 2
    [(props, data)] = _errors(log)
    assert props["title"] == "torchvet: no factories found"
    assert '[project.entry-points."torchvet.models"]' in data
    assert values["conclusion"] == "error"
    assert "no factories found" in summary


@pytest.mark.slow
def test_hostile_project_without_docker(tmp_path: Path) -> None:
    """The whole pipeline minus pip (install: none): user code sees no token and cannot
    issue commands; the exception reaches the annotation intact."""
    workspace = tmp_path / "ws"
    shutil.copytree(FIXTURES / "action" / "hostile", workspace)
    out = tmp_path / "outputs"
    env = {"GITHUB_WORKSPACE": str(workspace), "GITHUB_OUTPUT": str(out),
           "GITHUB_STEP_SUMMARY": str(tmp_path / "summary"), "GITHUB_TOKEN": "SENTINEL-GT",
           "ACTIONS_RUNTIME_TOKEN": "SENTINEL-ART", "PATH": "/usr/bin:/bin",
           "INPUT_INSTALL": "none", "INPUT_JUNIT-FILE": "j.xml", "INPUT_JSON-FILE": "r.json"}
    stream = io.StringIO()
    code = ep.main([], env, stream)
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


def test_workspace_is_marked_a_git_safe_directory(tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    log = tmp_path / "git.log"
    fake = tmp_path / "git"
    fake.write_text(f'#!/bin/sh\necho "$@" >> {log}\n')
    fake.chmod(0o755)
    monkeypatch.setattr(ep.shutil, "which", lambda name: str(fake) if name == "git" else None)
    ep.mark_safe_directory(Path("/github/workspace"), Path("/github/workspace"),
                           Path("/github/workspace/sub"))
    assert log.read_text().splitlines() == [
        "config --system --add safe.directory /github/workspace",
        "config --system --add safe.directory /github/workspace/sub"]


def test_install_command_runs_in_the_project_with_torch_pinned(tmp_path: Path) -> None:
    workspace = tmp_path / "ws"
    (workspace / "proj").mkdir(parents=True)
    code, log, values, _ = _main(
        tmp_path, path="proj",
        install_command='pwd; cat "$PIP_CONSTRAINT"; echo "::error::from the command"; '
                        'echo "token=${GITHUB_TOKEN:-none}"; exit 7')
    assert code == 2
    lines = log.splitlines()
    assert lines[0] == "::group::Install the project (install-command)"
    assert str(workspace / "proj") in lines and "token=none" in lines
    assert f"torch=={version('torch')}" in lines
    assert "SENTINEL" not in log
    [(props, data)] = _errors(log)  # the command's own ::error:: stayed in the block
    assert props["title"] == "torchvet: install failed"
    assert data.startswith("'pwd; cat") and "(exit 7)" in data
    assert values["conclusion"] == "error"
