"""``torchvet docker`` as a user runs it: its options mirror ``torchvet run``, usage
problems are exit 2 with one line before any Docker call, ``--help`` imports neither
docker nor torch, and Ctrl-C stops the containers and keeps what finished (exit 130)."""

from __future__ import annotations

import io
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import run_cli
from tests.helpers.action import HEALTHY
from tests.helpers.fake_docker import FakeContainer, FakeDaemon, cell_behaviour
from tests.helpers.signals import default_int_handler
from torchvet.action.docker.plan import DockerOptions
from torchvet.cli import cli, docker_command
from torchvet.commands.docker import docker
from torchvet.errors import ExitCode
from torchvet.options import RunOptions
from torchvet.reporters import json_report
from torchvet.results import Status


@pytest.fixture
def project(tmp_path: Path) -> Path:
    target = tmp_path / "project"
    shutil.copytree(HEALTHY, target)
    return target


def test_docker_mirrors_the_run_options_that_are_action_inputs() -> None:
    run_opts = {p.name: sorted(p.opts) for p in cli.commands["run"].params}
    docker_opts = {p.name: sorted(p.opts) for p in docker_command.params}
    for name in ("checks", "models", "exclude", "seed", "fail_on", "timeout", "jobs",
                 "shard", "device", "junit", "json_path"):
        assert docker_opts[name] == run_opts[name], name
    choices = {p.name: getattr(p.type, "choices", None) for p in docker_command.params}
    run_choices = {p.name: getattr(p.type, "choices", None) for p in cli.commands["run"].params}
    assert choices["fail_on"] == run_choices["fail_on"]
    assert choices["device"] == run_choices["device"]
    assert "docker" in cli.commands


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
    (["{healthy}", "--torch-index-url", "pypi.org"], "--torch-index-url 'pypi.org'"),
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


# --------------------------------------------------------------------------- Ctrl-C


def test_ctrl_c_keeps_what_finished_and_marks_the_cells_not_run_cancelled(
        project: Path, tmp_path: Path) -> None:
    """Ctrl-C while the first of two cells (one at a time) runs: its container is
    stopped, its report kept; the second never starts and is cancelled."""
    behave = cell_behaviour({})

    def interrupted(container: FakeContainer) -> tuple[list[bytes], int]:
        os.kill(os.getpid(), signal.SIGINT)
        # the container runs until torchvet docker stops it (as `docker stop` does)
        assert container.stopped.wait(60), "the container was never stopped"
        return behave(container)

    daemon = FakeDaemon(interrupted, {"img:1"})
    out = io.StringIO()
    options = DockerOptions(path=str(project), image="img:1", torch=["2.13.0", "2.4"],
                            run=RunOptions(jobs=1, json_path=str(tmp_path / "m.json")))
    with default_int_handler():
        code = docker(options, stream=out, connect_docker=daemon.connect)
    assert code == ExitCode.INTERRUPTED, out.getvalue()
    assert "interrupted: stopping the containers" in out.getvalue()
    assert len(daemon.created) == 1 and daemon.created[0].removed
    merged = json_report.read(tmp_path / "m.json")
    assert merged.interrupted
    assert {r.display_name: r.status for r in merged.reports} == {
        "mlp[torch 2.13.0]": Status.PASSED, "setup[torch 2.4]": Status.CANCELLED}


def test_ctrl_c_before_any_container_started_is_exit_130(project: Path,
                                                         tmp_path: Path) -> None:
    daemon = FakeDaemon(cell_behaviour({}), {"img:1"})
    daemon.on_image_lookup = lambda: os.kill(os.getpid(), signal.SIGINT)
    out = io.StringIO()
    with default_int_handler():
        code = docker(DockerOptions(path=str(project), image="img:1",
                                    run=RunOptions(json_path=str(tmp_path / "m.json"))),
                      stream=out, connect_docker=daemon.connect)
    assert code == ExitCode.INTERRUPTED
    assert "interrupted before any container started" in out.getvalue()
    assert daemon.created == [] and not (tmp_path / "m.json").exists()
