"""``torchvet docker`` end to end on the real Docker engine: the image built from the
repository's Dockerfile (``--build``) and run like the Actions runner on the fixture
repositories under tests/fixtures/action/, one cell or a torch matrix, merged reports,
Ctrl-C.

The engine, the base image and the image itself come from tests/e2e/conftest.py (same
tag, same build arguments: the ``--build`` here reuses its layer cache). With
``CI=true`` a missing engine fails these tests; elsewhere they skip, saying why.

The torch that "cannot be installed here" is 2.3.1 from an index that holds nothing
(``file:///nonexistent``): pip then fails the same way on every machine, with or without
the network, while the other cell asks for the image's own torch and installs none.
"""

from __future__ import annotations

import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from junitparser import JUnitXml

from tests.helpers import ROOT
from tests.helpers.action import HEALTHY, copy_fixture, culprit_line
from tests.helpers.signals import restore_sigint
from torchvet.reporters import json_report
from torchvet.results import Status

pytestmark = [pytest.mark.docker, pytest.mark.slow]

IMAGE_TORCH = re.search(r"^ARG TORCH_VERSION=(\S+)$",
                        (ROOT / "Dockerfile").read_text(encoding="utf-8"), re.M)
NO_INDEX = "file:///nonexistent"
LABEL = "torchvet.docker.project"


def environment(scratch: Path) -> dict[str, str]:
    env = {**os.environ, "NO_COLOR": "1", "TMPDIR": str(scratch)}
    env.pop("GITHUB_ACTIONS", None)
    return env


def torchvet_docker(*args: str, scratch: Path, timeout: float = 900
                    ) -> subprocess.CompletedProcess[str]:
    """``python -m torchvet docker ARGS``; its temporary files go to ``scratch``."""
    return subprocess.run([sys.executable, "-m", "torchvet", "docker", *args], cwd=ROOT,
                          env=environment(scratch), capture_output=True, text=True,
                          timeout=timeout, check=False)


def tree(root: Path) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*"))


def containers_of(daemon: Any, project: Path) -> list[Any]:
    return list(daemon.containers.list(all=True, filters={"label": f"{LABEL}={project}"}))


@dataclass
class Engine:
    """The Docker client, the image tests/e2e/conftest.py built and the torch index its
    build used (PyPI on the stand-in base image, else the CPU wheel index)."""

    client: Any
    image: str
    index: str


@pytest.fixture
def engine(client: Any, image: str, torch_index: str) -> Engine:
    return Engine(client, image, torch_index)


@pytest.fixture
def daemon(client: Any) -> Any:
    """The engine alone (no image build needed)."""
    return client


@pytest.fixture
def workdir(tmp_path: Path) -> dict[str, Path]:
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    return {"scratch": scratch, "out": tmp_path}


def test_build_and_a_healthy_project_exit_0_with_a_merged_report(
        engine: Engine, workdir: dict[str, Path]) -> None:
    project = copy_fixture("healthy", workdir["out"] / "healthy")
    before = tree(project)
    out = workdir["out"]
    started = time.monotonic()
    result = torchvet_docker(
        str(project), "--build", "--image", engine.image, "--torch-index-url", engine.index,
        "--checks=-data.workers", "--json", str(out / "r.json"), "--junit",
        str(out / "r.xml"), "--summary", str(out / "s.md"), scratch=workdir["scratch"])
    print(f"\ntorchvet docker --build on healthy: {time.monotonic() - started:.1f}s")
    log = result.stdout
    assert result.returncode == 0, log[-6000:] + result.stderr[-3000:]
    # the build's output streamed, then the container's log (groups as headings)
    assert f"build | Successfully tagged {engine.image}" in log
    assert "▶ Install the project: pip install ." in log and "▶ torchvet run" in log
    assert "::group::" not in log and "::stop-commands::" not in log
    # the files the container wrote in the file_commands mount, read back
    outputs = re.search(r"^outputs: conclusion=(\w+) passed=(\d+) failed=(\d+) errors=(\d+)",
                        log, re.M)
    assert outputs is not None, log[-3000:]
    assert outputs.group(1) == "success" and outputs.group(3) == outputs.group(4) == "0"
    summary = (out / "s.md").read_text(encoding="utf-8")
    assert summary.startswith("## ✅ torchvet: ")
    assert "| mlp | model | ✅ passed |" in summary
    # the merged report: table, JSON and JUnit
    assert re.search(rf"^torchvet docker · {re.escape(engine.image)} · 1 cell\(s\)$", log, re.M)
    for unit in ("classifier", "mlp", "points"):
        assert re.search(rf"^{unit} +(model|dataset) +passed", log, re.M), unit
    merged = json_report.read(out / "r.json")
    assert {r.name for r in merged.reports} == {"classifier", "mlp", "points"}
    assert all(r.status is Status.PASSED for r in merged.reports)
    assert merged.counts()[Status.PASSED] == int(outputs.group(2))
    assert not any(r.id == "data.workers" for _, r in merged.all_results())
    suites = {s.name for s in JUnitXml.fromfile(str(out / "r.xml"))}
    assert suites == {"classifier", "mlp", "points"}
    # nothing left behind: the project, the temporary files, the container
    assert tree(project) == before
    assert list(workdir["scratch"].iterdir()) == []
    assert containers_of(engine.client, project) == []


def test_build_and_a_buggy_project_exit_1_naming_the_failing_check(
        engine: Engine, workdir: dict[str, Path]) -> None:
    project = copy_fixture("buggy", workdir["out"] / "buggy")
    junit = workdir["out"] / "buggy.xml"
    result = torchvet_docker(str(project), "--build", "--image", engine.image,
                             "--torch-index-url", engine.index, "--checks", "training",
                             "--junit", str(junit), scratch=workdir["scratch"])
    log = result.stdout
    assert result.returncode == 1, log[-6000:] + result.stderr[-3000:]
    line = culprit_line(project / "src/buggy_models/models.py")
    # the action's annotation, as the terminal shows it, and the merged report's problem
    # one annotation lists the checks failing on that line
    assert (f"error: torchvet: dead_layer · training.gradients, training.update "
            f"(src/buggy_models/models.py:{line})") in log
    assert re.search(r"^FAILED dead_layer · .*training\.gradients", log, re.M), log[-4000:]
    assert re.search(r"^outputs: conclusion=failure ", log, re.M)
    cases = {(s.name, c.name): c for s in JUnitXml.fromfile(str(junit)) for c in s}
    failing = cases[("dead_layer", "training.gradients")]
    assert failing.result and failing.result[0].message.startswith("unused_proj")
    assert failing._elem.get("file") == "src/buggy_models/models.py"
    assert failing._elem.get("line") == str(line)
    assert containers_of(engine.client, project) == []


def test_a_matrix_cell_that_cannot_install_its_torch_is_an_error_for_that_cell_only(
        engine: Engine, workdir: dict[str, Path]) -> None:
    assert IMAGE_TORCH is not None
    ours = IMAGE_TORCH.group(1)  # the image's torch: that cell installs none
    project = copy_fixture("healthy", workdir["out"] / "healthy")
    out = workdir["out"]
    started = time.monotonic()
    result = torchvet_docker(
        str(project), "--image", engine.image, "--torch", f"{ours},2.3.1", "--torch-index-url",
        NO_INDEX, "-j", "2", "--checks=-data.workers", "--junit", str(out / "m.xml"),
        "--json", str(out / "m.json"), "--summary", str(out / "m.md"),
        scratch=workdir["scratch"])
    print(f"\ntwo-cell matrix: {time.monotonic() - started:.1f}s")
    log = result.stdout
    assert result.returncode == 1, log[-6000:] + result.stderr[-3000:]
    # each container's log carries its torch
    assert f"[torch {ours}] ▶ torchvet run" in log
    assert "[torch 2.3.1] ▶ Install torch 2.3.1" in log
    assert "[torch 2.3.1] error: torchvet: torch install failed" in log
    assert re.search(r"^\[torch 2\.3\.1\] outputs: conclusion=error ", log, re.M)
    assert re.search(rf"^\[torch {re.escape(ours)}\] outputs: conclusion=success ", log,
                     re.M)
    # the merged report: the failed cell is one error naming pip's reason
    merged = json_report.read(out / "m.json")
    by_name = {r.display_name: r for r in merged.reports}
    assert set(by_name) == {f"classifier[torch {ours}]", f"mlp[torch {ours}]",
                            f"points[torch {ours}]", "setup[torch 2.3.1]"}
    [failed] = by_name["setup[torch 2.3.1]"].results
    assert failed.status is Status.ERROR and failed.id == "setup.torch"
    assert failed.message == ("torch 2.3.1 could not be installed: pip: No matching "
                              "distribution found for torch==2.3.1")
    assert "pip could not install torch==2.3.1 from file:///nonexistent" in failed.details
    # the other cell's results are intact
    healthy = [r for n, r in by_name.items() if n != "setup[torch 2.3.1]"]
    assert all(r.status is Status.PASSED and r.label == f"torch {ours}" for r in healthy)
    assert sum(len(r.results) for r in healthy) >= 40
    # merged JUnit: both cells, every testsuite named with its torch
    suites = {s.name: s for s in JUnitXml.fromfile(str(out / "m.xml"))}
    assert set(suites) == set(by_name)
    assert suites["setup[torch 2.3.1]"].errors == 1
    assert sum(s.failures + s.errors for n, s in suites.items() if "2.3.1" not in n) == 0
    # the table has a row per unit and torch
    assert re.search(r"^setup\[torch 2\.3\.1\] +setup +error", log, re.M)
    assert re.search(rf"^mlp\[torch {re.escape(ours)}\] +model +passed", log, re.M)
    # both job summaries, read back from the containers
    summary = (out / "m.md").read_text(encoding="utf-8")
    assert f"# torch {ours}\n\n## ✅ torchvet" in summary
    assert "# torch 2.3.1\n\n## 💥 torchvet could not run: torch install failed" in summary
    assert list(workdir["scratch"].iterdir()) == []
    assert containers_of(engine.client, project) == []


def test_ctrl_c_stops_and_removes_the_containers_and_keeps_the_partial_report(
        engine: Engine, workdir: dict[str, Path]) -> None:
    """Ctrl-C while the slow unit provably runs (it blocks until released) and the fast
    one has reported: the container is stopped and removed, exit 130, and the partial
    report holds the fast unit's verdict and the slow one cancelled."""
    project = copy_fixture("blocking", workdir["out"] / "blocking")
    report = workdir["out"] / "partial.json"
    proc = subprocess.Popen(
        [sys.executable, "-m", "torchvet", "docker", str(project), "--image", engine.image,
         "--torch-index-url", engine.index, "--checks", "forward", "-j", "2", "--json",
         str(report)], cwd=ROOT, env=environment(workdir["scratch"]),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        preexec_fn=restore_sigint)
    lines: queue.Queue[str | None] = queue.Queue()

    def pump() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.put(line)
        lines.put(None)

    threading.Thread(target=pump, daemon=True).start()
    log: list[str] = []
    deadline = time.monotonic() + 600
    try:
        fast = slow = False  # until the fast unit reported and the slow one says it runs
        while not (fast and slow):  # (it blocks until released)
            line = lines.get(timeout=max(1.0, deadline - time.monotonic()))
            assert line is not None, "".join(log)[-5000:]
            log.append(line)
            fast = fast or bool(re.search(r"\[1/2\] fast \(model\) +PASSED", line))
            slow = slow or "blocking: the slow unit runs" in line
        running = containers_of(engine.client, project)
        assert [c.status for c in running] == ["running"]
        proc.send_signal(signal.SIGINT)
        code = proc.wait(timeout=120)
    finally:
        for gate in workdir["scratch"].glob("torchvet-docker-*/workspace/.gate"):
            (gate / "release").touch()  # never leave the unit blocked
        if proc.poll() is None:
            proc.kill()
    while (line := lines.get(timeout=30)) is not None:
        log.append(line)
    stderr = proc.stderr.read() if proc.stderr else ""
    text = "".join(log)
    assert code == 130, text[-5000:] + stderr
    assert stderr.strip().splitlines()[-1] == (
        "torchvet docker: interrupted: every container was stopped and removed; partial "
        f"reports in {report}")
    assert "interrupted: stopping the containers" in text
    assert containers_of(engine.client, project) == []
    assert list(workdir["scratch"].iterdir()) == []
    partial = json_report.read(report)
    assert partial.interrupted
    assert {r.name: r.status for r in partial.reports} == {
        "fast": Status.PASSED, "slow": Status.CANCELLED}


def test_gpus_on_a_daemon_without_the_nvidia_runtime_is_a_clear_error(
        engine: Engine, workdir: dict[str, Path]) -> None:
    project = copy_fixture("healthy", workdir["out"] / "healthy")
    result = torchvet_docker(str(project), "--image", engine.image, "--torch-index-url",
                             engine.index, "--gpus", "all", "--checks", "forward.runs",
                             scratch=workdir["scratch"])
    runtimes = engine.client.info().get("Runtimes") or {}
    if "nvidia" in runtimes:  # a GPU daemon: the request goes through
        assert result.returncode == 0, result.stdout[-4000:] + result.stderr
    else:
        assert result.returncode == 2, result.stdout[-4000:] + result.stderr
        [line] = result.stderr.splitlines()
        assert line.startswith("torchvet: error: the Docker daemon cannot give containers "
                               "GPUs (could not select device driver")
        assert "NVIDIA Container Toolkit" in line
    assert containers_of(engine.client, project) == []
    assert list(workdir["scratch"].iterdir()) == []


def test_an_image_that_cannot_be_pulled_is_exit_2_saying_how_to_build_it(
        daemon: Any, workdir: dict[str, Path]) -> None:
    result = torchvet_docker(str(HEALTHY), "--image",
                             "localhost:1/torchvet-missing:v0", scratch=workdir["scratch"],
                             timeout=300)
    assert result.returncode == 2, result.stdout + result.stderr
    [line] = result.stderr.splitlines()
    assert line.startswith("torchvet: error: the image localhost:1/torchvet-missing:v0 is "
                           "not here and cannot be pulled (")
    assert "torchvet docker --build" in line


def test_a_base_image_that_cannot_be_pulled_names_the_offline_stand_in(
        daemon: Any, workdir: dict[str, Path]) -> None:
    result = torchvet_docker(str(HEALTHY), "--build",
                             "--python-version", "0.0", "--image", "torchvet-action:never",
                             scratch=workdir["scratch"], timeout=300)
    assert result.returncode == 2, result.stdout + result.stderr
    [line] = result.stderr.splitlines()
    assert line.startswith("torchvet: error: the base image python:0.0-slim is not here "
                           "and cannot be pulled (")
    assert "scripts/docker/stand-in-base-image.sh python:0.0-slim" in line
