"""The Docker engine and the action's image for the end-to-end tests.

Needs a Docker engine and the base image (``scripts/docker/ensure-engine.sh``,
``scripts/docker/stand-in-base-image.sh``). With ``CI=true`` a missing engine or base
image is a failure (the scripts are tried first); elsewhere the tests skip, saying why.
The image is built once per session from the repository's own Dockerfile and tagged
``$TORCHVET_TEST_IMAGE`` (default ``torchvet-action:test``): a worktree of its own sets
another tag, so parallel builds do not overwrite each other.
"""

from __future__ import annotations

import os
import subprocess
import time
from typing import Any

import docker
import pytest

from tests.helpers import ROOT

IMAGE = os.environ.get("TORCHVET_TEST_IMAGE", "torchvet-action:test")
BASE = "python:3.11-slim"
CPU_INDEX = "https://download.pytorch.org/whl/cpu"
PYPI = "https://pypi.org/simple"
IN_CI = os.environ.get("CI", "").lower() in ("true", "1")


def _unavailable(reason: str) -> None:
    if IN_CI:
        pytest.fail(f"CI=true but {reason}", pytrace=False)
    pytest.skip(reason)


def _script(name: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bash", str(ROOT / "scripts" / "docker" / name), *args],
                          capture_output=True, text=True, timeout=900, check=False)


@pytest.fixture(scope="session")
def client() -> Any:
    """A client of the engine (started first in CI)."""
    def connect() -> Any:
        try:
            found = docker.from_env(timeout=300)
            found.ping()
            return found
        except Exception as exc:  # docker.errors.DockerException, connection errors
            return exc

    found = connect()
    if isinstance(found, Exception) and IN_CI:
        started = _script("ensure-engine.sh")
        found = connect()
        if isinstance(found, Exception):
            pytest.fail(f"CI=true and the Docker engine cannot start: {found}\n"
                        f"{started.stdout}{started.stderr}", pytrace=False)
    if isinstance(found, Exception):
        _unavailable(f"no Docker engine answers ({found}); run "
                     "scripts/docker/ensure-engine.sh")
    return found


@pytest.fixture(scope="session")
def torch_index(client: Any) -> str:
    """The index the image's torch comes from: ``$TORCHVET_TEST_TORCH_INDEX_URL``, else
    the CPU wheel index, unless the base image is the stand-in whose pip finds the CPU
    torch wheel locally (then PyPI, as the CPU index is unreachable where it is used)."""
    given = os.environ.get("TORCHVET_TEST_TORCH_INDEX_URL")
    if given:
        return given
    try:
        client.containers.run(BASE, ["sh", "-c", "ls /opt/wheels/torch-*+cpu-*.whl"],
                              network_mode="none", remove=True)
        return PYPI
    except Exception:  # no stand-in (ContainerError) or no base image at all
        return CPU_INDEX


@pytest.fixture(scope="session")
def image(client: Any, torch_index: str) -> str:
    """The image built from the repository's Dockerfile (the build time is printed)."""
    try:
        client.images.get(BASE)
    except docker.errors.ImageNotFound:
        if IN_CI:
            made = _script("stand-in-base-image.sh", BASE)
            assert made.returncode == 0, made.stdout + made.stderr
        else:
            _unavailable(f"the base image {BASE} is missing; run "
                         "scripts/docker/stand-in-base-image.sh")
    started = time.monotonic()
    try:
        client.images.build(path=str(ROOT), tag=IMAGE, network_mode="host", rm=True,
                            forcerm=True, buildargs={"TORCH_INDEX_URL": torch_index},
                            timeout=1800)
    except docker.errors.BuildError as exc:
        log = "".join(str(chunk.get("stream") or chunk.get("error") or "")
                      for chunk in exc.build_log)
        pytest.fail(f"docker build failed: {exc}\n{log[-6000:]}", pytrace=False)
    size = client.images.get(IMAGE).attrs["Size"]
    print(f"\nbuilt {IMAGE} in {time.monotonic() - started:.1f}s, {size / 1e6:.0f} MB "
          f"(torch from {torch_index})")
    return IMAGE
