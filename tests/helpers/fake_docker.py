"""A fake Docker daemon for ``torchvet docker``'s tests: the calls torchvet makes, with
the daemon's behaviour that matters (files written into the mounts, a streamed log, exit
codes, pull and start errors), and a record of what was asked."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import docker

from torchvet import __version__
from torchvet.action.docker.plan import FILE_COMMANDS_MOUNT, REPORT_FILE, WORKSPACE
from torchvet.github import reporter as gh
from torchvet.github import workflow
from torchvet.reporters import json_report
from torchvet.results import CheckResult, RunReport, Status, UnitReport


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
        self.stopped = threading.Event()

    @property
    def env(self) -> dict[str, str]:
        return dict(self.kwargs["environment"])

    def host(self, bind: str) -> Path:
        """The host directory mounted at ``bind``."""
        return Path(next(h for h, s in self.kwargs["volumes"].items() if s["bind"] == bind))

    def file(self, variable: str) -> Path:
        """The host file of a file command (``GITHUB_OUTPUT``...)."""
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
        self.stopped.set()

    def kill(self) -> None:
        self.stopped.set()


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
        self.on_image_lookup: Callable[[], None] = lambda: None
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
        self.on_image_lookup()
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
        """What ``import docker`` gives torchvet: this daemon from ``from_env``."""
        return SimpleNamespace(
            from_env=lambda timeout=None: self,
            errors=SimpleNamespace(APIError=FakeAPIError, ImageNotFound=FakeNotFound,
                                   DockerException=FakeAPIError),
            utils=docker.utils)

    def connect(self) -> tuple[Any, Any]:
        """``run``'s ``connect_docker``."""
        return self.module(), self


FAILED_TORCH = "2.3.1"


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
        time.sleep(0.2)  # only widens the overlap `most` counts; nothing waits on it
        with seen["lock"]:
            seen["running"] -= 1
        if version == FAILED_TORCH:
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
