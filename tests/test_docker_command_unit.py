"""``torchvet docker`` without a daemon: the input mapping (checked against the action's
own entrypoint), the GPU DeviceRequest, the log renderer, setup-error reports, the
workspace snapshot, error messages, and the orchestration against a fake docker client
that behaves like the daemon (files written into the mounts, a streamed log).

The real engine runs in tests/test_docker_command.py.
"""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import docker
import pytest
from junitparser import JUnitXml
from ruamel.yaml import YAML
from test_entrypoint import ep

from conftest import FIXTURES, ROOT, run_cli
from torchvet import __version__
from torchvet.action import workflow
from torchvet.action.docker.command import (
    DockerError,
    LineBuffer,
    docker_command,
    explain_connection_error,
    explain_run_error,
    run,
)
from torchvet.action.docker.logs import LogRenderer, read_outputs, setup_report
from torchvet.action.docker.plan import (
    ACTION_DEFAULTS,
    FILE_COMMANDS_MOUNT,
    HOME,
    REPORT_FILE,
    WORKSPACE,
    DockerOptions,
    PlanError,
    base_image,
    cell_inputs,
    container_environment,
    default_image,
    device_requests,
    parallel_cells,
    parse_gpus,
    parse_torch_versions,
)
from torchvet.action.docker.workspace import snapshot
from torchvet.cli import cli
from torchvet.reporters import github as gh
from torchvet.reporters import json_report
from torchvet.results import CheckResult, RunReport, Status, UnitReport

HEALTHY = FIXTURES / "action" / "healthy"


# --------------------------------------------------------------------------- inputs


def test_the_defaults_are_action_yml_inputs_and_defaults() -> None:
    action = YAML(typ="safe").load((ROOT / "action.yml").read_text(encoding="utf-8"))
    declared = {name: str(spec.get("default", "")) for name, spec in action["inputs"].items()}
    assert declared == ACTION_DEFAULTS


def test_without_options_every_input_is_passed_and_reports_go_to_the_file_commands_mount(
        ) -> None:
    inputs = cell_inputs(DockerOptions(), "", None)
    assert set(inputs) == set(ACTION_DEFAULTS)
    assert inputs["json-file"] == f"{FILE_COMMANDS_MOUNT}/{REPORT_FILE}"
    assert inputs["junit-file"].startswith(f"{FILE_COMMANDS_MOUNT}/")  # never into the project
    assert inputs["torch-index-url"] == ""  # the image's own index
    assert {k: inputs[k] for k in ("path", "install", "torch-version", "device", "jobs",
                                   "fail-on", "seed", "annotations", "summary")} == {
        "path": ".", "install": ".", "torch-version": "", "device": "cpu", "jobs": "",
        "fail-on": "", "seed": "", "annotations": "true", "summary": "true"}


def test_run_options_become_the_matching_inputs() -> None:
    options = DockerOptions(
        checks=("forward", "training.update,-data.workers"), models=("res*", "vit"),
        exclude=("big",), fail_on="warning", seed=0, timeout=2.5, shard="2/3",
        device="cuda", install=".[test]", install_command="make deps", subpath="pkg",
        torch_index_url="https://download.pytorch.org/whl/cu121")
    inputs = cell_inputs(options, "2.4.1", 3)
    assert inputs["checks"] == "forward,training.update,-data.workers"
    assert inputs["models"] == "res*,vit" and inputs["exclude"] == "big"
    assert inputs["fail-on"] == "warning" and inputs["seed"] == "0"
    assert inputs["timeout"] == "2.5" and inputs["shard"] == "2/3"
    assert inputs["device"] == "cuda" and inputs["jobs"] == "3"
    assert inputs["install"] == ".[test]" and inputs["install-command"] == "make deps"
    assert inputs["path"] == "pkg" and inputs["torch-version"] == "2.4.1"
    assert inputs["torch-index-url"] == "https://download.pytorch.org/whl/cu121"
    assert cell_inputs(DockerOptions(timeout=300.0), "", None)["timeout"] == "300"


def test_the_entrypoint_reads_the_environment_back_as_given() -> None:
    """The container's environment goes through the action's own parser unchanged."""
    options = DockerOptions(checks=("forward,-forward.finite",), models=("mlp",),
                            fail_on="never", seed=7, timeout=30, jobs=2, shard="1/2",
                            torch_index_url="https://pypi.org/simple")
    step = uuid.uuid4().hex
    env = container_environment(cell_inputs(options, "2.4", 2), step)
    assert env["INPUT_TORCH-VERSION"] == "2.4" and env["INPUT_FAIL-ON"] == "never"
    assert "INPUT_TORCH_VERSION" not in env  # the hyphen is kept, as the runner does
    assert env["GITHUB_ACTIONS"] == "true" and env["CI"] == "true"
    assert env["GITHUB_WORKSPACE"] == WORKSPACE and env["HOME"] == HOME
    assert env["GITHUB_OUTPUT"] == f"{FILE_COMMANDS_MOUNT}/set_output_{step}"
    assert env["GITHUB_STEP_SUMMARY"] == f"{FILE_COMMANDS_MOUNT}/step_summary_{step}"
    assert not [k for k in env if workflow.is_token(k)]
    parsed, errors = ep.parse_inputs(env)
    assert errors == []
    assert (parsed.torch_version, parsed.checks, parsed.models, parsed.fail_on) == (
        "2.4", "forward,-forward.finite", "mlp", "never")
    assert (parsed.seed, parsed.timeout, parsed.jobs, parsed.shard) == (7, 30.0, 2, "1/2")
    assert parsed.json_file == f"{FILE_COMMANDS_MOUNT}/{REPORT_FILE}"
    assert parsed.torch_index_url == "https://pypi.org/simple"
    # empty index: the image's (TORCHVET_TORCH_INDEX_URL baked in by the Dockerfile)
    plain = container_environment(cell_inputs(DockerOptions(), "", None), step)
    baked = ep.parse_inputs({**plain, "TORCHVET_TORCH_INDEX_URL": "https://x.example/whl"})
    assert baked[0].torch_index_url == "https://x.example/whl" and baked[1] == []


@pytest.mark.parametrize(("cells", "jobs", "cpus", "in_place", "expected"), [
    (1, None, 8, False, (1, None)),  # a lone cell: the container's cores
    (1, 4, 8, False, (1, 4)),
    (2, 8, 8, False, (2, 4)),  # -j is the total: the cells share it
    (3, 4, 8, False, (3, 1)),
    (5, 2, 8, False, (2, 1)),  # at most -j cells at a time
    (3, None, 2, False, (2, 1)),  # without -j: the daemon's cores
    (3, 4, 8, True, (1, 4)),  # one workspace in place: one cell at a time
])
def test_cells_at_once_and_jobs_per_cell(cells: int, jobs: int | None, cpus: int,
                                         in_place: bool, expected: tuple[int, int]) -> None:
    assert parallel_cells(cells, jobs, cpus, in_place) == expected


def test_torch_versions_are_split_checked_and_deduplicated() -> None:
    assert parse_torch_versions(("2.3.1,2.4", "2.5.1", "2.4")) == ["2.3.1", "2.4", "2.5.1"]
    with pytest.raises(PlanError, match=r"--torch 2\.x: not a torch version"):
        parse_torch_versions(("2.4.1,2.x",))


def test_the_default_image_is_the_one_the_release_workflow_publishes() -> None:
    release = (ROOT / ".github" / "workflows" / "release.yml").read_text(encoding="utf-8")
    assert "image=ghcr.io/$owner/torchvet" in release
    assert "${{ steps.names.outputs.image }}:${{ github.ref_name }}" in release  # vX.Y.Z
    owner = re.search(r'image\.source="https://github\.com/([^/]+)/',
                      (ROOT / "Dockerfile").read_text(encoding="utf-8"))
    assert owner is not None
    assert default_image() == f"ghcr.io/{owner.group(1).lower()}/torchvet:v{__version__}"


def test_the_base_image_is_read_from_the_dockerfile_with_the_build_args() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    assert base_image(dockerfile, {}) == "python:3.11-slim"
    assert base_image(dockerfile, {"PYTHON_VERSION": "3.12"}) == "python:3.12-slim"


def test_docker_mirrors_the_run_options_that_are_action_inputs() -> None:
    run_opts = {p.name: sorted(p.opts) for p in cli.commands["run"].params}
    docker_opts = {p.name: sorted(p.opts) for p in docker_command.params}
    for name in ("checks", "models", "exclude", "seed", "fail_on", "timeout", "jobs",
                 "shard", "device", "junit", "json_path"):
        assert docker_opts[name] == run_opts[name], name
    assert "docker" in cli.commands


# --------------------------------------------------------------------------- GPUs


@pytest.mark.parametrize(("spec", "expected"), [
    ("all", {"Driver": "", "Count": -1, "DeviceIDs": [], "Capabilities": [["gpu"]],
             "Options": {}}),
    ("2", {"Driver": "", "Count": 2, "DeviceIDs": [], "Capabilities": [["gpu"]],
           "Options": {}}),
    ("device=0,2", {"Driver": "", "Count": 0, "DeviceIDs": ["0", "2"],
                    "Capabilities": [["gpu"]], "Options": {}}),
    ("device=GPU-3a2b4c5d", {"Driver": "", "Count": 0, "DeviceIDs": ["GPU-3a2b4c5d"],
                             "Capabilities": [["gpu"]], "Options": {}}),
])
def test_gpus_become_a_device_request(spec: str, expected: dict[str, Any]) -> None:
    [request] = device_requests(spec)
    assert isinstance(request, docker.types.DeviceRequest)
    assert dict(request) == expected  # what `docker run --gpus` sends the daemon


@pytest.mark.parametrize("spec", ["0", "-1", "some", "device=", "device=0;rm", "gpu"])
def test_bad_gpus_are_rejected(spec: str) -> None:
    with pytest.raises(PlanError, match="--gpus"):
        parse_gpus(spec)


def test_no_gpus_no_device_request() -> None:
    assert device_requests(None) == []


# --------------------------------------------------------------------------- the log


def test_the_log_renderer_follows_stop_commands_like_the_runner() -> None:
    renderer = LogRenderer()
    shown: list[str] = []
    for line in [
        "::group::torchvet run",
        "::stop-commands::aB12",
        "::error title=fake::from user code",
        "::endgroup::",
        "::ab12::",
        "::endgroup::",
        workflow.command("error", "unused_proj never gets a gradient\nfix: use it",
                   file="src/m.py", line=12, title="torchvet: dead_layer · training.grad"),
        "plain line",
    ]:
        shown += renderer.feed(line)
    assert shown == [
        "▶ torchvet run",
        "::error title=fake::from user code",  # inside the block: text, not a command
        "::endgroup::",
        "error: torchvet: dead_layer · training.grad (src/m.py:12)",
        "    unused_proj never gets a gradient",
        "    fix: use it",
        "plain line",
    ]
    [note] = renderer.annotations
    assert (note.title, note.file, note.line) == (
        "torchvet: dead_layer · training.grad", "src/m.py", "12")


def test_raw_log_shows_every_line_unchanged() -> None:
    renderer = LogRenderer(raw=True)
    lines = ["::group::x", "::stop-commands::t", "::error::u", "::t::", "::endgroup::",
             "::warning title=a%3Ab::m%25"]
    assert [out for line in lines for out in renderer.feed(line)] == lines
    assert [(a.level, a.title, a.message) for a in renderer.annotations] == [
        ("warning", "a:b", "m%")]


def test_line_buffer_joins_chunks_into_lines() -> None:
    buffer = LineBuffer()
    assert buffer.feed(b"one\r\ntw") == ["one"]
    assert buffer.feed("o\nthr\u00e9".encode()) == ["two"]
    assert buffer.flush() == ["thré"]


def test_outputs_are_read_as_the_runner_reads_them() -> None:
    text = gh.format_outputs({"passed": "3", "failures": "a:b\nc:d", "conclusion": "failure"})
    assert read_outputs(text) == {"passed": "3", "failures": "a:b\nc:d",
                                  "conclusion": "failure"}


def test_a_torch_install_failure_is_an_error_naming_pips_reason() -> None:
    message = ("pip could not install torch==2.3.1 from https://download.pytorch.org/whl/cpu "
               "(exit 1). Check 'torch-version' and 'torch-index-url'. pip's last lines:\n"
               "ERROR: Could not find a version that satisfies the requirement torch==2.3.1\n"
               "ERROR: No matching distribution found for torch==2.3.1")
    renderer = LogRenderer()
    renderer.feed(workflow.command("error", message, title="torchvet: torch install failed"))
    run_report = setup_report(version="2.3.1", label="torch 2.3.1", code=2,
                              annotations=renderer.annotations, tail=[])
    [unit] = run_report.reports
    assert (unit.display_name, unit.kind, unit.status) == (
        "setup[torch 2.3.1]", "setup", Status.ERROR)
    [result] = unit.results
    assert result.id == "setup.torch"
    assert result.message == ("torch 2.3.1 could not be installed: pip: No matching "
                              "distribution found for torch==2.3.1")
    assert message in result.details


def test_an_unreachable_index_is_named_as_the_reason() -> None:
    message = ("pip could not install torch==2.3.1 from https://download.pytorch.org/whl/cpu "
               "(exit 1). pip's last lines:\n"
               "WARNING: Retrying (Retry(total=0)) after connection broken by "
               "'NewConnectionError('<HTTPSConnection>: Failed to establish a new "
               "connection: [Errno -2] Name or service not known')': /whl/cpu/torch/\n"
               "ERROR: No matching distribution found for torch==2.3.1")
    renderer = LogRenderer()
    renderer.feed(workflow.command("error", message, title="torchvet: torch install failed"))
    report = setup_report(version="2.3.1", label="torch 2.3.1", code=2,
                          annotations=renderer.annotations, tail=[])
    assert report.reports[0].results[0].message == (
        "torch 2.3.1 could not be installed: pip: No matching distribution found for "
        "torch==2.3.1 (a package index could not be reached: check the URL and the network)")


def test_a_container_without_report_or_annotation_is_an_error_with_its_log() -> None:
    report = setup_report(version="", label="", code=137, annotations=[],
                          tail=["Killed"])
    [result] = report.reports[0].results
    assert result.status is Status.ERROR and "exited with code 137" in result.message
    assert "Killed" in result.details
    cancelled = setup_report(version="", label="", code=143, annotations=[], tail=[],
                             cancelled=True)
    assert cancelled.reports[0].results[0].status is Status.CANCELLED


# --------------------------------------------------------------------------- snapshot


def _git(cwd: Path, *args: str) -> None:
    subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@example.com", *args],
                   cwd=cwd, check=True, capture_output=True)


@pytest.mark.skipif(shutil.which("git") is None, reason="needs git")
def test_the_snapshot_holds_what_a_checkout_would(tmp_path: Path) -> None:
    project = tmp_path / "project"
    shutil.copytree(HEALTHY, project)
    (project / ".gitignore").write_text("data/\n.venv/\n", encoding="utf-8")
    _git(project, "init", "-q")
    _git(project, "add", ".")
    _git(project, "commit", "-q", "-m", "init")
    (project / "new_module.py").write_text("x = 1\n", encoding="utf-8")  # not added yet
    (project / "data").mkdir()
    (project / "data" / "big.bin").write_bytes(b"0" * 1000)
    (project / ".venv").mkdir()
    (project / ".venv" / "pyvenv.cfg").write_text("", encoding="utf-8")
    copy = tmp_path / "copy"
    files, size = snapshot(project, copy)
    found = sorted(p.relative_to(copy).as_posix() for p in copy.rglob("*") if p.is_file())
    assert found == [".gitignore", "new_module.py", "pyproject.toml",
                     "src/healthy_models/__init__.py", "src/healthy_models/data.py",
                     "src/healthy_models/models.py"]
    assert files == len(found) and size > 0


def test_without_git_the_snapshot_skips_environments_and_caches(tmp_path: Path,
                                                                monkeypatch: Any) -> None:
    project = tmp_path / "project"
    shutil.copytree(HEALTHY, project)
    for skipped in (".venv/lib/x.py", "src/healthy_models/__pycache__/m.pyc", ".git/HEAD"):
        (project / skipped).parent.mkdir(parents=True, exist_ok=True)
        (project / skipped).write_text("", encoding="utf-8")
    monkeypatch.setenv("PATH", "")  # no git
    copy = tmp_path / "copy"
    snapshot(project, copy)
    found = sorted(p.relative_to(copy).as_posix() for p in copy.rglob("*") if p.is_file())
    assert found == ["pyproject.toml", "src/healthy_models/__init__.py",
                     "src/healthy_models/data.py", "src/healthy_models/models.py"]


# --------------------------------------------------------------------------- errors


def test_connection_errors_name_the_fix() -> None:
    denied = docker.errors.DockerException(
        "Error while fetching server API version: ('Connection aborted.', "
        "PermissionError(13, 'Permission denied'))")
    message = explain_connection_error(denied, "unix:///var/run/docker.sock")
    assert message.startswith("permission denied on the Docker socket /var/run/docker.sock")
    assert "usermod -aG docker" in message and "\n" not in message
    missing = docker.errors.DockerException(
        "Error while fetching server API version: ('Connection aborted.', "
        "FileNotFoundError(2, 'No such file or directory'))")
    message = explain_connection_error(missing, "unix:///run/x.sock")
    assert message.startswith("cannot reach the Docker daemon at unix:///run/x.sock")
    assert "systemctl start docker" in message and "DOCKER_HOST" in message
    assert "\n" not in message


def test_a_daemon_without_gpu_support_names_the_nvidia_toolkit() -> None:
    error = docker.errors.APIError(
        "500 Server Error", explanation='could not select device driver "" with '
                                        'capabilities: [[gpu]]')
    message = explain_run_error(error, "all")
    assert "NVIDIA Container Toolkit" in message and "nvidia-ctk runtime configure" in message


def test_an_unreachable_daemon_is_exit_2_with_one_line(tmp_path: Path) -> None:
    result = run_cli("docker", str(HEALTHY),
                     env={"DOCKER_HOST": f"unix://{tmp_path}/no-daemon.sock"})
    assert result.returncode == 2, result.stderr
    [line] = result.stderr.splitlines()
    assert line.startswith(f"torchvet: error: cannot reach the Docker daemon at "
                           f"unix://{tmp_path}/no-daemon.sock")
    assert "DOCKER_HOST" in line


@pytest.mark.parametrize(("args", "expected"), [
    (["{tmp}"], "is not a project: it has no pyproject.toml"),
    (["{tmp}/missing"], "is not a directory"),
    (["{healthy}", "--gpus", "two"], "--gpus 'two'"),
    (["{healthy}", "--checks", "nope"], "--checks nope matches no check"),
    (["{healthy}", "--shard", "5/4"], "--shard 5/4"),
    (["{healthy}", "--torch", "latest"], "--torch latest: not a torch version"),
])
def test_bad_usage_is_exit_2_before_any_docker_call(tmp_path: Path, args: list[str],
                                                    expected: str) -> None:
    argv = [a.format(tmp=tmp_path, healthy=HEALTHY) for a in args]
    # an unreachable daemon: these must fail before talking to it
    result = run_cli("docker", *argv, env={"DOCKER_HOST": "unix:///nonexistent.sock"})
    assert result.returncode == 2, result.stderr
    [line] = result.stderr.splitlines()
    assert line.startswith("torchvet: error:") and expected in line, line


def test_help_imports_neither_docker_nor_torch() -> None:
    code = ("import sys\nfrom torchvet.cli import main\n"
            "for args in (['--help'], ['docker', '--help']):\n"
            "    assert main(args) == 0\n"
            "print(sorted(m for m in ('docker', 'torch') if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=True, timeout=60)
    assert result.stdout.strip().endswith("[]"), result.stdout[-500:]
    assert "torchvet docker [OPTIONS] [PATH]" in result.stdout


# --------------------------------------------------------------------------- a fake daemon


class FakeAPIError(Exception):
    def __init__(self, message: str, explanation: str | None = None) -> None:
        super().__init__(message)
        self.explanation = explanation or message


class FakeNotFound(FakeAPIError):
    pass


Behaviour = Callable[["FakeContainer"], tuple[list[bytes], int]]


class FakeContainer:
    def __init__(self, daemon: FakeDaemon, image: str, kwargs: dict[str, Any]) -> None:
        self.daemon = daemon
        self.image = image
        self.kwargs = kwargs
        self.id = uuid.uuid4().hex
        self.chunks: list[bytes] = []
        self.code = 0
        self.removed = False

    @property
    def env(self) -> dict[str, str]:
        return dict(self.kwargs["environment"])

    def host(self, bind: str) -> Path:
        return Path(next(h for h, s in self.kwargs["volumes"].items() if s["bind"] == bind))

    def file(self, variable: str) -> Path:
        return self.host(FILE_COMMANDS_MOUNT) / Path(self.env[variable]).name

    def start(self) -> None:
        if self.daemon.start_error:
            raise FakeAPIError("500 Server Error", self.daemon.start_error)
        self.chunks, self.code = self.daemon.behaviour(self)

    def logs(self, stream: bool, follow: bool) -> Iterator[bytes]:
        assert stream and follow
        yield from self.chunks
        if self.daemon.log_error:
            raise self.daemon.log_error

    def wait(self) -> dict[str, int]:
        return {"StatusCode": self.code}

    def remove(self, force: bool = False) -> None:
        self.removed = True

    def stop(self, timeout: int = 10) -> None:
        pass

    def kill(self) -> None:
        pass


class FakeDaemon:
    def __init__(self, behaviour: Behaviour, images: set[str], *,
                 pull_error: str | None = None, start_error: str | None = None) -> None:
        self.behaviour = behaviour
        self.image_names = images
        self.pull_error = pull_error
        self.start_error = start_error
        self.created: list[FakeContainer] = []
        self.pulled: list[str] = []
        self.lock = threading.Lock()
        self.ran: list[dict[str, Any]] = []
        self.log_error: Exception | None = None
        self.containers = SimpleNamespace(create=self._create, run=self._run)
        self.images = SimpleNamespace(get=self._get)
        self.api = SimpleNamespace(pull=self._pull)

    def _create(self, image: str, **kwargs: Any) -> FakeContainer:
        container = FakeContainer(self, image, kwargs)
        with self.lock:
            self.created.append(container)
        return container

    def _run(self, image: str, **kwargs: Any) -> None:
        self.ran.append({"image": image, **kwargs})

    def _get(self, name: str) -> Any:
        if name not in self.image_names:
            raise FakeNotFound(f"No such image: {name}")
        return SimpleNamespace(id=name)

    def _pull(self, repository: str, tag: str, stream: bool, decode: bool
              ) -> Iterator[dict[str, str]]:
        self.pulled.append(f"{repository}:{tag}")
        if self.pull_error:
            yield {"error": self.pull_error}

    def ping(self) -> bool:
        return True

    def info(self) -> dict[str, Any]:
        return {"NCPU": 4}

    def close(self) -> None:
        pass

    def module(self) -> Any:
        return SimpleNamespace(
            from_env=lambda timeout=None: self,
            errors=SimpleNamespace(APIError=FakeAPIError, ImageNotFound=FakeNotFound,
                                   DockerException=FakeAPIError),
            utils=docker.utils)


def cell_behaviour(seen: dict[str, Any]) -> Behaviour:
    """What the action does in the container: a healthy run for the image's torch, a
    failing torch install for 2.3.1; files written where the runner's mounts are."""
    def behave(container: FakeContainer) -> tuple[list[bytes], int]:
        env = container.env
        version = env["INPUT_TORCH-VERSION"]
        workspace = container.host(WORKSPACE)
        seen.setdefault("workspaces", []).append(workspace)
        seen.setdefault("workspace_files", []).append(
            sorted(p.name for p in workspace.iterdir()))
        (workspace / "build").mkdir(exist_ok=True)  # what pip leaves in the project
        with seen.setdefault("lock", threading.Lock()):
            seen["running"] = seen.get("running", 0) + 1
            seen["most"] = max(seen.get("most", 0), seen["running"])
        time.sleep(0.2)
        with seen["lock"]:
            seen["running"] -= 1
        if version == "2.3.1":
            message = ("pip could not install torch==2.3.1 from file:///nowhere (exit 1). "
                       "pip's last lines:\nERROR: No matching distribution found for "
                       "torch==2.3.1")
            gh.write_outputs(container.file("GITHUB_OUTPUT"), {"conclusion": "error"})
            container.file("GITHUB_STEP_SUMMARY").write_text(
                "## torchvet could not run: torch install failed\n", encoding="utf-8")
            log = ("::group::Install torch 2.3.1\n::stop-commands::f00d\n"
                   "ERROR: No matching distribution found for torch==2.3.1\n::f00d::\n"
                   "::endgroup::\n"
                   + workflow.command("error", message, title="torchvet: torch install failed")
                   + "\n")
            return [log.encode()], 2
        report = RunReport(
            reports=[UnitReport(name="mlp", results=[
                CheckResult("forward.runs", Status.PASSED, "ok"),
                CheckResult("training.update", Status.PASSED, "ok")])],
            torch_version="2.13.0+cpu", torchvet_version=__version__)
        json_report.write(report, container.host(FILE_COMMANDS_MOUNT) / REPORT_FILE)
        gh.write_outputs(container.file("GITHUB_OUTPUT"),
                         {"passed": "2", "failed": "0", "conclusion": "success"})
        container.file("GITHUB_STEP_SUMMARY").write_text("## ✅ torchvet: 2 passed\n",
                                                         encoding="utf-8")
        return [b"::group::torchvet run\n::stop-commands::c0ffee\n", b"::error::fake fr",
                b"om user code\n[1/1] mlp (model) PASSED\n::c0ffee::\n::endgroup::\n"], 0
    return behave


@pytest.fixture
def project(tmp_path: Path) -> Path:
    target = tmp_path / "project"
    shutil.copytree(HEALTHY, target)
    return target


def tree(root: Path) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*"))


def test_a_cell_runs_like_the_runner_and_its_files_are_read_back(project: Path,
                                                                 tmp_path: Path) -> None:
    seen: dict[str, Any] = {}
    daemon = FakeDaemon(cell_behaviour(seen), {"img:1"})
    before = tree(project)
    out = io.StringIO()
    options = DockerOptions(path=str(project), image="img:1", checks=("forward",),
                            json_path=str(tmp_path / "m.json"),
                            junit=str(tmp_path / "m.xml"), summary=str(tmp_path / "s.md"))
    code = run(options, stream=out, connect_docker=lambda: (daemon.module(), daemon))
    text = out.getvalue()
    assert code == 0, text
    [container] = daemon.created
    kwargs = container.kwargs
    assert container.image == "img:1"
    assert kwargs["working_dir"] == WORKSPACE and kwargs["network_mode"] == "host"
    assert kwargs["device_requests"] is None
    binds = {spec["bind"]: (host, spec["mode"]) for host, spec in kwargs["volumes"].items()}
    assert set(binds) == {WORKSPACE, FILE_COMMANDS_MOUNT, HOME}
    assert binds[WORKSPACE][0] != str(project)  # a snapshot: the project is never written
    assert seen["workspace_files"] == [["pyproject.toml", "src"]]
    assert {f"INPUT_{name.upper()}" for name in ACTION_DEFAULTS} <= set(container.env)
    assert container.env["INPUT_CHECKS"] == "forward"
    assert kwargs["labels"]["torchvet.docker.project"] == str(project)
    assert container.removed
    assert tree(project) == before and not seen["workspaces"][0].exists()
    # the log: groups as headings, user output inside stop-commands as text
    assert "▶ torchvet run\n::error::fake from user code\n[1/1] mlp (model) PASSED\n" in text
    assert "outputs: conclusion=success passed=2 failed=0" in text
    merged = json_report.read(tmp_path / "m.json")
    assert [(r.display_name, r.status) for r in merged.reports] == [("mlp", Status.PASSED)]
    assert (tmp_path / "s.md").read_text(encoding="utf-8") == "## ✅ torchvet: 2 passed\n"
    assert [s.name for s in JUnitXml.fromfile(str(tmp_path / "m.xml"))] == ["mlp"]


def test_a_matrix_labels_every_unit_and_a_failed_torch_install_is_that_cells_error(
        project: Path, tmp_path: Path) -> None:
    daemon = FakeDaemon(cell_behaviour({}), {"img:1"})
    out = io.StringIO()
    options = DockerOptions(path=str(project), image="img:1", torch=["2.13.0", "2.3.1"],
                            jobs=2, junit=str(tmp_path / "m.xml"),
                            json_path=str(tmp_path / "m.json"),
                            summary=str(tmp_path / "s.md"))
    code = run(options, stream=out, connect_docker=lambda: (daemon.module(), daemon))
    text = out.getvalue()
    assert code == 1, text
    envs = sorted((c.env["INPUT_TORCH-VERSION"], c.env["INPUT_JOBS"]) for c in daemon.created)
    assert envs == [("2.13.0", "1"), ("2.3.1", "1")]
    assert "[torch 2.13.0] ▶ torchvet run\n" in text
    assert "[torch 2.3.1] error: torchvet: torch install failed\n" in text
    assert "[torch 2.3.1] outputs: conclusion=error" in text
    merged = json_report.read(tmp_path / "m.json")
    assert {r.display_name: r.status for r in merged.reports} == {
        "mlp[torch 2.13.0]": Status.PASSED, "setup[torch 2.3.1]": Status.ERROR}
    setup = next(r for r in merged.reports if r.kind == "setup")
    assert setup.results[0].message.endswith("pip: No matching distribution found for "
                                             "torch==2.3.1")
    suites = {s.name: s for s in JUnitXml.fromfile(str(tmp_path / "m.xml"))}
    assert set(suites) == {"mlp[torch 2.13.0]", "setup[torch 2.3.1]"}
    assert suites["setup[torch 2.3.1]"].errors == 1
    summary = (tmp_path / "s.md").read_text(encoding="utf-8")
    assert "# torch 2.13.0\n\n## ✅ torchvet" in summary
    assert "# torch 2.3.1\n\n## torchvet could not run" in summary
    # the table: a row per unit and torch
    assert re.search(r"^mlp\[torch 2\.13\.0\] +model +passed", text, re.M)
    assert re.search(r"^setup\[torch 2\.3\.1\] +setup +error", text, re.M)


def test_in_place_mounts_the_project_itself_one_cell_at_a_time(project: Path) -> None:
    seen: dict[str, Any] = {}
    daemon = FakeDaemon(cell_behaviour(seen), {"img:1"})
    options = DockerOptions(path=str(project), image="img:1", torch=["2.13.0", "2.4"],
                            jobs=4, in_place=True)
    assert run(options, stream=io.StringIO(),
               connect_docker=lambda: (daemon.module(), daemon)) == 0
    assert seen["workspaces"] == [project, project] and seen["most"] == 1
    assert [c.env["INPUT_JOBS"] for c in daemon.created] == ["4", "4"]
    assert (project / "build").is_dir()  # what --in-place documents


def test_ctrl_c_keeps_what_finished_and_marks_the_cells_not_run_cancelled(
        project: Path, tmp_path: Path) -> None:
    behave = cell_behaviour({})

    def interrupted(container: FakeContainer) -> tuple[list[bytes], int]:
        os.kill(os.getpid(), signal.SIGINT)  # Ctrl-C while the first cell runs
        return behave(container)

    daemon = FakeDaemon(interrupted, {"img:1"})
    out = io.StringIO()
    options = DockerOptions(path=str(project), image="img:1", torch=["2.13.0", "2.4"],
                            jobs=1, json_path=str(tmp_path / "m.json"))
    code = run(options, stream=out, connect_docker=lambda: (daemon.module(), daemon))
    assert code == 130, out.getvalue()
    assert "interrupted: stopping the containers" in out.getvalue()
    assert len(daemon.created) == 1 and daemon.created[0].removed
    merged = json_report.read(tmp_path / "m.json")
    assert merged.interrupted
    assert {r.display_name: r.status for r in merged.reports} == {
        "mlp[torch 2.13.0]": Status.PASSED, "setup[torch 2.4]": Status.CANCELLED}


def test_gpus_reach_the_container_and_a_daemon_without_them_is_a_clear_error(
        project: Path) -> None:
    daemon = FakeDaemon(cell_behaviour({}), {"img:1"},
                        start_error='could not select device driver "" with capabilities: '
                                    '[[gpu]]')
    options = DockerOptions(path=str(project), image="img:1", gpus="device=0,1",
                            device="cuda")
    with pytest.raises(DockerError, match="install the NVIDIA Container Toolkit"):
        run(options, stream=io.StringIO(), connect_docker=lambda: (daemon.module(), daemon))
    [container] = daemon.created
    assert [dict(r) for r in container.kwargs["device_requests"]] == [
        {"Driver": "", "Count": 0, "DeviceIDs": ["0", "1"], "Capabilities": [["gpu"]],
         "Options": {}}]
    assert container.removed


def test_an_image_that_cannot_be_pulled_says_how_to_build_it(project: Path) -> None:
    daemon = FakeDaemon(cell_behaviour({}), set(), pull_error="manifest unknown")
    with pytest.raises(DockerError) as caught:
        run(DockerOptions(path=str(project)), stream=io.StringIO(),
            connect_docker=lambda: (daemon.module(), daemon))
    message = str(caught.value)
    assert daemon.pulled == [default_image()]
    assert message.startswith(f"the image {default_image()} is not here and cannot be "
                              "pulled (manifest unknown)")
    assert "torchvet docker --build" in message and "stand-in-base-image.sh" in message
    assert daemon.created == []


def test_a_base_image_that_cannot_be_pulled_names_the_offline_stand_in(project: Path) -> None:
    daemon = FakeDaemon(cell_behaviour({}), set(), pull_error="no such host")
    options = DockerOptions(path=str(project), build=True, context=str(ROOT),
                            python_version="3.12")
    with pytest.raises(DockerError) as caught:
        run(options, stream=io.StringIO(), connect_docker=lambda: (daemon.module(), daemon))
    assert daemon.pulled == ["python:3.12-slim"]
    assert str(caught.value).startswith(
        "the base image python:3.12-slim is not here and cannot be pulled (no such host): "
        "without registry access build a stand-in from Debian packages with "
        "scripts/docker/stand-in-base-image.sh python:3.12-slim")


def test_build_without_the_sources_says_where_to_get_them(project: Path, tmp_path: Path
                                                          ) -> None:
    daemon = FakeDaemon(cell_behaviour({}), set())
    options = DockerOptions(path=str(project), build=True, context=str(tmp_path))
    with pytest.raises(DockerError, match=r"no Dockerfile and entrypoint\.py .*git clone"):
        run(options, stream=io.StringIO(), connect_docker=lambda: (daemon.module(), daemon))


def test_a_daemon_lost_mid_run_is_a_clear_error(project: Path) -> None:
    daemon = FakeDaemon(cell_behaviour({}), {"img:1"})
    daemon.log_error = ConnectionError("Connection aborted.")
    with pytest.raises(DockerError, match=r"^lost the Docker daemon while the container "
                                          r"ran \(Connection aborted\.\): check"):
        run(DockerOptions(path=str(project), image="img:1"), stream=io.StringIO(),
            connect_docker=lambda: (daemon.module(), daemon))
    assert [c.removed for c in daemon.created] == [True]


def test_files_a_container_left_as_root_are_removed_by_a_throwaway_container(
        project: Path, monkeypatch: Any) -> None:
    import torchvet.action.docker.command as docker_run

    real = docker_run.remove_tree
    calls: list[Path] = []

    def remove_tree(path: Path) -> bool:  # the first try fails, as for a non-root user
        calls.append(path)
        return len(calls) > 1 and real(path)

    monkeypatch.setattr(docker_run, "remove_tree", remove_tree)
    daemon = FakeDaemon(cell_behaviour({}), {"img:1"})
    assert run(DockerOptions(path=str(project), image="img:1"), stream=io.StringIO(),
               connect_docker=lambda: (daemon.module(), daemon)) == 0
    [helper] = daemon.ran
    scratch = calls[0]
    assert helper["image"] == "img:1" and helper["remove"] is True
    assert helper["entrypoint"][:2] == ["rm", "-rf"]
    assert helper["volumes"] == {str(scratch): {"bind": "/scratch", "mode": "rw"}}
    assert helper["network_mode"] == "none"
    assert calls == [scratch, scratch] and not scratch.exists()


def test_reports_keep_round_tripping(tmp_path: Path) -> None:
    """The merged JSON is a normal report: `torchvet merge` reads it."""
    report = setup_report(version="2.3.1", label="torch 2.3.1", code=2, annotations=[],
                          tail=["x"])
    path = tmp_path / "r.json"
    json_report.write(report, path)
    data = json.loads(path.read_text(encoding="utf-8"))
    assert data["reports"][0]["label"] == "torch 2.3.1"
    assert json_report.read(path).reports[0].display_name == "setup[torch 2.3.1]"
    assert os.path.getsize(path) > 0
