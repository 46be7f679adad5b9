"""What ``torchvet docker`` hands each container, without a daemon: every input of the
action (from the one table in action/inputs.py, read back by the entrypoint's own parser),
the runner's environment, the GPU DeviceRequest, cells at once, the images."""

from __future__ import annotations

import re
import uuid
from typing import Any

import docker
import pytest

from tests.helpers import ROOT
from torchvet import __version__
from torchvet.action.docker.plan import (
    FILE_COMMAND_FILES,
    FILE_COMMANDS_MOUNT,
    HOME,
    REPORT_FILE,
    WORKSPACE,
    DockerOptions,
    PlanError,
    base_image,
    build_args,
    cell_inputs,
    container_environment,
    default_image,
    device_requests,
    parallel_cells,
    parse_gpus,
    parse_torch_versions,
)
from torchvet.action.inputs import DEFAULT_TORCH_INDEX, IMAGE_TORCH_INDEX, defaults, parse_inputs
from torchvet.github import workflow
from torchvet.options import Device, FailOn, RunOptions


def test_without_options_every_input_is_passed_and_reports_go_to_the_file_commands_mount(
        ) -> None:
    inputs = cell_inputs(DockerOptions(), "", None)
    assert list(inputs) == list(defaults())  # every input of action.yml, as the runner
    assert inputs["json-file"] == f"{FILE_COMMANDS_MOUNT}/{REPORT_FILE}"
    assert inputs["junit-file"].startswith(f"{FILE_COMMANDS_MOUNT}/")  # never into the project
    untouched = {k: v for k, v in inputs.items() if k not in ("json-file", "junit-file")}
    assert untouched == {k: v for k, v in defaults().items() if k in untouched}


def test_run_options_become_the_matching_inputs() -> None:
    options = DockerOptions(
        run=RunOptions(checks=("forward", "training.update", "-data.workers"),
                       models=("res*", "vit"), exclude=("big",), fail_on=FailOn.WARNING,
                       seed=0, timeout=2.5, shard="2/3", device=Device.CUDA),
        install=".[test]", install_command="make deps", subpath="pkg",
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
    assert cell_inputs(DockerOptions(run=RunOptions(timeout=300.0)), "", None)["timeout"] == "300"


def test_the_entrypoint_reads_the_environment_back_as_given() -> None:
    """The container's environment goes through the action's own parser unchanged."""
    options = DockerOptions(run=RunOptions(checks=("forward", "-forward.finite"),
                                           models=("mlp",), fail_on=FailOn.NEVER, seed=7,
                                           timeout=30, jobs=2, shard="1/2"),
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
    parsed, errors = parse_inputs(env)
    assert errors == []
    run = parsed.run
    assert (parsed.torch_version, run.checks, run.models, run.fail_on) == (
        "2.4", ("forward", "-forward.finite"), ("mlp",), "never")
    assert (run.seed, run.timeout, run.jobs, run.shard) == (7, 30.0, 2, "1/2")
    assert run.json_path == f"{FILE_COMMANDS_MOUNT}/{REPORT_FILE}"
    assert parsed.torch_index_url == "https://pypi.org/simple"
    # no --torch-index-url: the image's own (TORCHVET_TORCH_INDEX_URL, baked in)
    plain = container_environment(cell_inputs(DockerOptions(), "", None), step)
    assert parse_inputs(plain)[0].torch_index_url == DEFAULT_TORCH_INDEX
    baked = parse_inputs({**plain, IMAGE_TORCH_INDEX: "https://x.example/whl"})
    assert baked[0].torch_index_url == "https://x.example/whl" and baked[1] == []


def test_every_file_command_gets_a_file() -> None:
    assert set(FILE_COMMAND_FILES) == set(workflow.FILE_COMMAND_VARIABLES)


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


def test_a_torch_older_than_the_supported_range_is_refused_naming_the_range() -> None:
    assert parse_torch_versions(("2.1.2,2.14.1",)) == ["2.1.2", "2.14.1"]
    with pytest.raises(PlanError, match=r"--torch: torch 2\.0\.1 is older than torchvet "
                                        r"supports \(torch >= 2\.1\)"):
        parse_torch_versions(("2.4.1,2.0.1",))


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
    args = build_args(DockerOptions(python_version="3.12", image_torch="2.5.1",
                                    torch_index_url="https://pypi.org/simple"))
    assert args == {"PYTHON_VERSION": "3.12", "TORCH_VERSION": "2.5.1",
                    "TORCH_INDEX_URL": "https://pypi.org/simple"}
    assert all(f"ARG {name}=" in dockerfile for name in args)


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
