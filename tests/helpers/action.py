"""The fixture repositories of the action's tests (tests/fixtures/action/), what the
tests read from them, and the image run the way the Actions runner runs a container
action (the Docker tests of the action share one harness)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML

from tests.helpers import ROOT
from tests.helpers.workflow import read_outputs

ACTION_FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "action"
HEALTHY = ACTION_FIXTURES / "healthy"
RUNNER_UID = 1001  # the runner's user on GitHub-hosted machines owns the workspace
SENTINELS = {"GITHUB_TOKEN": "SENTINEL-github-token", "GH_TOKEN": "SENTINEL-gh-token",
             "ACTIONS_RUNTIME_TOKEN": "SENTINEL-runtime-token",
             "ACTIONS_ID_TOKEN_REQUEST_TOKEN": "SENTINEL-oidc-token"}
DOCKER_SOCKET = "/var/run/docker.sock"
FILE_COMMANDS = ("set_output", "step_summary", "set_env", "add_path", "save_state")


def culprit_line(path: Path) -> int:
    """The line of ``path`` marked ``# culprit`` (where an annotation must point)."""
    return next(i for i, text in enumerate(path.read_text().splitlines(), 1)
                if "# culprit" in text)


def copy_fixture(name: str, target: Path) -> Path:
    """A copy of the fixture repository ``name`` at ``target`` (a test may write there)."""
    shutil.copytree(ACTION_FIXTURES / name, target)
    return target


ATTACKS = ACTION_FIXTURES / "attacks"


def findings(output: str) -> list[dict[str, object]]:
    """The ``FINDING {json}`` lines the attacks fixture printed (tests/fixtures/action/
    attacks/src/attack_models/probes.py): attack, target, blocked, detail."""
    found = []
    for line in output.splitlines():
        if line.startswith("FINDING {"):
            found.append(json.loads(line.removeprefix("FINDING ")))
    return found


def action_defaults() -> dict[str, str]:
    """Every input action.yml declares and its default (what the runner passes)."""
    action = YAML(typ="safe").load((ROOT / "action.yml").read_text(encoding="utf-8"))
    return {name: str(spec.get("default", "")) for name, spec in action["inputs"].items()}


@dataclass
class ActionRun:
    code: int
    stdout: str
    stderr: str
    workspace: Path
    outputs: dict[str, str]
    outputs_text: str
    summary: str
    seconds: float
    files: Path = Path()
    names: dict[str, str] = field(default_factory=dict)
    home: Path = Path()
    workflow: Path = Path()
    changed: list[str] = field(default_factory=list)  # `docker diff` of the container

    def file(self, name: str) -> Path:
        return self.workspace / name

    def command_file(self, name: str) -> Path:
        return self.files / self.names[name]


Prepare = Callable[[Path, Path, dict[str, str]], None]


def action_runner(client: Any, image: str, tmp_path: Path) -> Callable[..., ActionRun]:
    """Run the image on a copy of a fixture repository like the runner does:
    ``docker run --workdir /github/workspace -v repo:/github/workspace
    -v files:/github/file_commands -v home:/github/home -v workflow:/github/workflow
    -v /var/run/docker.sock:/var/run/docker.sock -e INPUT_<NAME>... -e GITHUB_*`` with
    every input declared in action.yml (defaults included: torch comes from the index the
    image's torch came from), the tokens the runner passes, and ``GITHUB_ENV``,
    ``GITHUB_PATH``, ``GITHUB_STATE`` pointing at files in the file-commands mount.
    ``fixture``: a fixture's name (copied) or a repository already made under
    ``tmp_path``; ``prepare(workspace, files, names)`` may change the mounts first."""

    def run(fixture: str | Path, prepare: Prepare | None = None, **inputs: str) -> ActionRun:
        workspace = (copy_fixture(fixture, tmp_path / "workspace") if isinstance(fixture, str)
                     else fixture)
        files, home, workflow = (tmp_path / "file_commands", tmp_path / "home",
                                 tmp_path / "workflow")
        for directory in (files, home, workflow):
            directory.mkdir()
        (workflow / "event.json").write_text('{"action": "opened"}\n', encoding="utf-8")
        step = uuid.uuid4().hex
        names = {k: f"{k}_{step}" for k in FILE_COMMANDS}
        for name in names.values():
            (files / name).touch()
        if prepare is not None:
            prepare(workspace, files, names)
        if os.geteuid() == 0:
            for root in (workspace, files, home, workflow):
                subprocess.run(["chown", "-hR", f"{RUNNER_UID}:{RUNNER_UID}", str(root)],
                               check=True)
        values = {**action_defaults(), **{k.replace("_", "-"): v for k, v in inputs.items()}}
        environment = {
            **{f"INPUT_{name.upper()}": value for name, value in values.items()},
            "HOME": "/github/home", "GITHUB_ACTIONS": "true", "CI": "true",
            "GITHUB_WORKSPACE": "/github/workspace",
            "GITHUB_OUTPUT": f"/github/file_commands/{names['set_output']}",
            "GITHUB_STEP_SUMMARY": f"/github/file_commands/{names['step_summary']}",
            "GITHUB_ENV": f"/github/file_commands/{names['set_env']}",
            "GITHUB_PATH": f"/github/file_commands/{names['add_path']}",
            "GITHUB_STATE": f"/github/file_commands/{names['save_state']}",
            "GITHUB_EVENT_PATH": "/github/workflow/event.json",
            "GITHUB_REPOSITORY": "octo/models", "GITHUB_SHA": "0123abcd" * 5,
            "GITHUB_SERVER_URL": "https://github.com", "GITHUB_EVENT_NAME": "pull_request",
            "RUNNER_OS": "Linux", "RUNNER_TEMP": "/home/runner/work/_temp",
            "ACTIONS_RUNTIME_URL": "https://pipelines.example/", **SENTINELS,
        }
        volumes = {str(workspace): {"bind": "/github/workspace", "mode": "rw"},
                   str(files): {"bind": "/github/file_commands", "mode": "rw"},
                   str(home): {"bind": "/github/home", "mode": "rw"},
                   str(workflow): {"bind": "/github/workflow", "mode": "rw"}}
        if Path(DOCKER_SOCKET).exists():  # the real one: the sandbox must keep it out of reach
            volumes[DOCKER_SOCKET] = {"bind": DOCKER_SOCKET, "mode": "rw"}
        started = time.monotonic()
        container = client.containers.run(
            image, detach=True, working_dir="/github/workspace", network_mode="host",
            environment=environment, volumes=volumes)
        try:
            code = container.wait(timeout=900)["StatusCode"]
            seconds = time.monotonic() - started
            stdout = container.logs(stdout=True, stderr=False).decode("utf-8", "replace")
            stderr = container.logs(stdout=False, stderr=True).decode("utf-8", "replace")
            changed = [change["Path"] for change in container.diff() or []]
        finally:
            container.remove(force=True)
        outputs_text = (files / names["set_output"]).read_text(encoding="utf-8")
        return ActionRun(
            code=code, stdout=stdout, stderr=stderr, workspace=workspace,
            outputs=read_outputs(outputs_text), outputs_text=outputs_text,
            summary=(files / names["step_summary"]).read_text(encoding="utf-8"),
            seconds=seconds, files=files, names=names, home=home, workflow=workflow,
            changed=changed)

    return run
