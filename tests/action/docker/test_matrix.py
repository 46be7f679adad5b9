"""The cells against a fake daemon that behaves like the real one (files written into
the mounts, a streamed log): mounts, environment, the log on the terminal, what is read
back, labels in a matrix, clean-up."""

from __future__ import annotations

import io
import os
import re
import shutil
from pathlib import Path
from typing import Any

import pytest
from junitparser import JUnitXml

from tests.helpers.action import HEALTHY
from tests.helpers.fake_docker import FakeDaemon, cell_behaviour
from torchvet.action.docker import matrix
from torchvet.action.docker.client import DockerError
from torchvet.action.docker.plan import (
    FILE_COMMANDS_MOUNT,
    HOME,
    REPORT_FILE,
    WORKSPACE,
    DockerOptions,
)
from torchvet.action.inputs import defaults
from torchvet.commands.docker import docker
from torchvet.options import Device, RunOptions
from torchvet.reporters import json_report
from torchvet.results import RunReport, Status, UnitReport


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
    options = DockerOptions(path=str(project), image="img:1", summary=str(tmp_path / "s.md"),
                            run=RunOptions(checks=("forward",),
                                           json_path=str(tmp_path / "m.json"),
                                           junit=str(tmp_path / "m.xml")))
    code = docker(options, stream=out, connect_docker=daemon.connect)
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
    assert {f"INPUT_{name.upper()}" for name in defaults()} <= set(container.env)
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
                            run=RunOptions(jobs=2, junit=str(tmp_path / "m.xml"),
                                           json_path=str(tmp_path / "m.json")),
                            summary=str(tmp_path / "s.md"))
    code = docker(options, stream=out, connect_docker=daemon.connect)
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
                            run=RunOptions(jobs=4), in_place=True)
    assert docker(options, stream=io.StringIO(), connect_docker=daemon.connect) == 0
    assert seen["workspaces"] == [project, project] and seen["most"] == 1
    assert [c.env["INPUT_JOBS"] for c in daemon.created] == ["4", "4"]
    assert (project / "build").is_dir()  # what --in-place documents


def test_gpus_reach_the_container_and_a_daemon_without_them_is_a_clear_error(
        project: Path) -> None:
    daemon = FakeDaemon(cell_behaviour({}), {"img:1"},
                        start_error='could not select device driver "" with capabilities: '
                                    '[[gpu]]')
    options = DockerOptions(path=str(project), image="img:1", gpus="device=0,1",
                            run=RunOptions(device=Device.CUDA))
    with pytest.raises(DockerError, match="install the NVIDIA Container Toolkit"):
        docker(options, stream=io.StringIO(), connect_docker=daemon.connect)
    [container] = daemon.created
    assert [dict(r) for r in container.kwargs["device_requests"]] == [
        {"Driver": "", "Count": 0, "DeviceIDs": ["0", "1"], "Capabilities": [["gpu"]],
         "Options": {}}]
    assert container.removed


def test_a_daemon_lost_mid_run_is_a_clear_error(project: Path) -> None:
    daemon = FakeDaemon(cell_behaviour({}), {"img:1"})
    daemon.log_error = ConnectionError("Connection aborted.")
    with pytest.raises(DockerError, match=r"^lost the Docker daemon while the container "
                                          r"ran \(Connection aborted\.\): check"):
        docker(DockerOptions(path=str(project), image="img:1"), stream=io.StringIO(),
            connect_docker=daemon.connect)
    assert [c.removed for c in daemon.created] == [True]


def test_files_a_container_left_as_root_are_removed_by_a_throwaway_container(
        project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real = matrix.remove_tree
    calls: list[Path] = []

    def remove_tree(path: Path) -> bool:  # the first try fails, as for a non-root user
        calls.append(path)
        return len(calls) > 1 and real(path)

    monkeypatch.setattr(matrix, "remove_tree", remove_tree)
    daemon = FakeDaemon(cell_behaviour({}), {"img:1"})
    assert docker(DockerOptions(path=str(project), image="img:1"), stream=io.StringIO(),
               connect_docker=daemon.connect) == 0
    [helper] = daemon.ran
    scratch = calls[0]
    assert helper["image"] == "img:1" and helper["remove"] is True
    assert helper["entrypoint"][:2] == ["rm", "-rf"]
    assert helper["volumes"] == {str(scratch): {"bind": "/scratch", "mode": "rw"}}
    assert helper["network_mode"] == "none"
    assert calls == [scratch, scratch] and not scratch.exists()


def test_only_regular_files_are_read_back_from_a_cell(project: Path, tmp_path: Path) -> None:
    """The container ran the project's code: a symlink it leaves in the file-commands
    mount must not put a file of this machine into the summary or the report."""
    secret = tmp_path / "host-secret.md"
    secret.write_text("SECRET of the host\n")
    other_report = tmp_path / "elsewhere.json"
    json_report.write(RunReport([UnitReport("planted")]), other_report)

    def behave(container: Any) -> tuple[list[bytes], int]:
        summary = container.file("GITHUB_STEP_SUMMARY")
        summary.unlink()
        summary.symlink_to(secret)
        (container.host(FILE_COMMANDS_MOUNT) / REPORT_FILE).symlink_to(other_report)
        os.mkfifo(container.file("GITHUB_OUTPUT").with_name("fifo"))
        container.file("GITHUB_OUTPUT").unlink()
        container.file("GITHUB_OUTPUT").with_name("fifo").rename(container.file("GITHUB_OUTPUT"))
        return [b"done\n"], 0

    daemon = FakeDaemon(behave, {"img:1"})
    out = io.StringIO()
    options = DockerOptions(path=str(project), image="img:1", summary=str(tmp_path / "s.md"),
                            run=RunOptions(json_path=str(tmp_path / "m.json")))
    docker(options, stream=out, connect_docker=daemon.connect)  # returns: the FIFO never blocks
    assert "SECRET" not in (tmp_path / "s.md").read_text() + out.getvalue()
    merged = json_report.read(tmp_path / "m.json")
    assert "planted" not in {u.name for u in merged.reports}
    assert "is a symlink; refusing to follow it" in out.getvalue()
