"""The daemon and the image: each problem is one line naming the fix (a DockerError,
exit 2), checked against a fake daemon; the real one runs in tests/e2e/."""

from __future__ import annotations

import io
from pathlib import Path

import docker
import pytest

from tests.helpers import ROOT
from tests.helpers.fake_docker import FakeDaemon, cell_behaviour
from torchvet.action.docker.client import (
    DockerError,
    ensure_image,
    explain_connection_error,
    explain_run_error,
    find_context,
    open_image,
)
from torchvet.action.docker.logs import Printer
from torchvet.action.docker.plan import DockerOptions, default_image


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
    other = explain_run_error(docker.errors.APIError("409", explanation="name in use\nmore"),
                              None)
    assert other == "docker could not run the container: name in use"


def test_the_sources_to_build_from_are_this_checkout() -> None:
    assert find_context(None) == ROOT
    assert find_context(str(ROOT)) == ROOT


def test_an_image_that_cannot_be_pulled_says_how_to_build_it() -> None:
    daemon = FakeDaemon(cell_behaviour({}), set(), pull_error="manifest unknown")
    with pytest.raises(DockerError) as caught:
        ensure_image(daemon.module(), daemon, default_image(), Printer(io.StringIO()))
    message = str(caught.value)
    assert daemon.pulled == [default_image()]
    assert message.startswith(f"the image {default_image()} is not here and cannot be "
                              "pulled (manifest unknown)")
    assert "torchvet docker --build" in message and "stand-in-base-image.sh" in message


def test_an_image_that_is_here_is_neither_pulled_nor_built() -> None:
    daemon = FakeDaemon(cell_behaviour({}), {"img:1"})
    image = open_image(daemon.module(), daemon, DockerOptions(image="img:1"),
                       Printer(io.StringIO()), default_image())
    assert image == "img:1" and daemon.pulled == []


def test_a_base_image_that_cannot_be_pulled_names_the_offline_stand_in() -> None:
    daemon = FakeDaemon(cell_behaviour({}), set(), pull_error="no such host")
    options = DockerOptions(build=True, context=str(ROOT), python_version="3.12")
    with pytest.raises(DockerError) as caught:
        open_image(daemon.module(), daemon, options, Printer(io.StringIO()), "unused")
    assert daemon.pulled == ["python:3.12-slim"]
    assert str(caught.value).startswith(
        "the base image python:3.12-slim is not here and cannot be pulled (no such host): "
        "without registry access build a stand-in from Debian packages with "
        "scripts/docker/stand-in-base-image.sh python:3.12-slim")


def test_build_without_the_sources_says_where_to_get_them(tmp_path: Path) -> None:
    daemon = FakeDaemon(cell_behaviour({}), set())
    options = DockerOptions(build=True, context=str(tmp_path))
    with pytest.raises(DockerError, match=r"no Dockerfile and entrypoint\.py .*git clone"):
        open_image(daemon.module(), daemon, options, Printer(io.StringIO()), "unused")
