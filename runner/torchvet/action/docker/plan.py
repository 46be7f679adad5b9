"""What ``torchvet docker`` hands each container, decided without a daemon: the action's
inputs (every one of :mod:`torchvet.action.inputs`, defaults included, as
``INPUT_<NAME>`` with the hyphens kept, as the Actions runner passes them; the run's
from the command's :class:`~torchvet.options.RunOptions`), the ``GITHUB_*`` environment,
the GPU request, how many matrix cells run at once; and the options checked before any
container starts.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ... import __version__
from ...errors import UsageError
from ...options import RunOptions
from ...torch_range import unsupported
from ..inputs import INDEX_URL, NONE, TORCH_VERSION, defaults, run_inputs, split
from ..install import PROJECT_FILES

# where the runner mounts things in a container action
WORKSPACE = "/github/workspace"
FILE_COMMANDS_MOUNT = "/github/file_commands"
HOME = "/github/home"

# the image the release workflow pushes (.github/workflows/release.yml:
# ghcr.io/<owner>/torchvet:v<version>); the owner is the torchvet organisation
PUBLISHED_IMAGE = "ghcr.io/torchvet/torchvet"
BUILD_TAG = "torchvet-action:local"

# the step's file commands (workflow.FILE_COMMAND_VARIABLES), named as the runner names
# their files (<name>_<step guid>)
FILE_COMMAND_FILES = {
    "GITHUB_OUTPUT": "set_output",
    "GITHUB_STEP_SUMMARY": "step_summary",
    "GITHUB_ENV": "set_env",
    "GITHUB_PATH": "add_path",
    "GITHUB_STATE": "save_state",
}
REPORT_FILE = "torchvet-report.json"  # written by the cell into the file_commands mount
JUNIT_FILE = "torchvet-junit.xml"

_PYTHON = re.compile(r"^[0-9]+\.[0-9]+$")


class PlanError(UsageError):
    """A bad option: the message says how to fix it (exit code 2)."""


@dataclass
class DockerOptions:
    """``torchvet docker``'s options: the run's (``run``: every container's run inputs;
    its ``junit`` and ``json_path`` are the merged reports), and the image's."""

    path: str = "."
    run: RunOptions = field(default_factory=RunOptions)
    subpath: str = "."  # input `path`: the project inside the workspace (monorepos)
    image: str | None = None
    build: bool = False
    context: str | None = None
    python_version: str | None = None  # build arg PYTHON_VERSION
    image_torch: str | None = None  # build arg TORCH_VERSION
    torch: list[str] = field(default_factory=list)  # the matrix ([]: the image's torch)
    torch_index_url: str | None = None  # input torch-index-url and build arg TORCH_INDEX_URL
    install: str | None = None
    install_command: str | None = None
    gpus: str | None = None
    network: str = "host"
    in_place: bool = False
    summary: str | None = None
    raw_log: bool = False


def default_image() -> str:
    """The published image of this torchvet version."""
    return f"{PUBLISHED_IMAGE}:v{__version__}"


def split_list(values: Sequence[str]) -> list[str]:
    """Repeated options, comma- or newline-separated values alike."""
    return [part for value in values for part in split(value)]


def parse_torch_versions(values: Sequence[str]) -> list[str]:
    """``--torch 2.3.1,2.4`` (repeatable): the versions, in order, without repeats."""
    versions = list(dict.fromkeys(split_list(values)))
    bad = [v for v in versions if not TORCH_VERSION.match(v)]
    if bad:
        raise PlanError(f"--torch {', '.join(bad)}: not a torch version; use e.g. "
                        "--torch 2.3.1,2.4 (a prefix like 2.4 means its newest release)")
    old = [why for why in map(unsupported, versions) if why is not None]
    if old:
        raise PlanError(f"--torch: {old[0]}")
    return versions


def cell_label(version: str) -> str:
    """The label of a matrix cell's units (``mlp[torch 2.4.1]``); none without --torch."""
    return f"torch {version}" if version else ""


def parallel_cells(cells: int, jobs: int | None, cpus: int, in_place: bool = False
                   ) -> tuple[int, int | None]:
    """How many cells run at once, and the ``jobs`` input of each.

    ``-j N`` is the number of units checked at once in total, as for ``torchvet run``: at
    most N cells run at a time and share N between them. Without ``-j`` the cells share
    the machine's cores, and a lone cell leaves ``jobs`` to the container (its cores). A
    workspace mounted in place is never shared: its cells run one after the other.
    """
    budget = jobs or cpus
    at_once = 1 if in_place else max(1, min(cells, budget))
    if not jobs and at_once == 1:
        return at_once, None
    return at_once, max(1, budget // at_once)


def cell_inputs(options: DockerOptions, torch_version: str, jobs: int | None
                ) -> dict[str, str]:
    """Every input of action.yml for one cell, as the runner passes them (defaults
    included). The reports go to the file_commands mount, never into the project."""
    values = defaults()
    values.update(run_inputs(options.run))
    values.update({
        "path": options.subpath or ".",
        "install": options.install if options.install is not None else values["install"],
        "install-command": options.install_command or "",
        "torch-version": torch_version,
        "torch-index-url": options.torch_index_url or values["torch-index-url"],
        "junit-file": f"{FILE_COMMANDS_MOUNT}/{JUNIT_FILE}",
        "json-file": f"{FILE_COMMANDS_MOUNT}/{REPORT_FILE}",
        "jobs": str(jobs) if jobs is not None else "",
    })
    return values


def container_environment(inputs: Mapping[str, str], step: str) -> dict[str, str]:
    """The container's environment: ``INPUT_<NAME>`` (upper case, hyphens kept, like
    ``INPUT_TORCH-VERSION``), the file-command paths in the file_commands mount, and the
    runner's ``GITHUB_ACTIONS``/``CI``/``GITHUB_WORKSPACE``/``HOME``. No token."""
    env = {f"INPUT_{name.replace(' ', '_').upper()}": value for name, value in inputs.items()}
    env.update({name: f"{FILE_COMMANDS_MOUNT}/{file}_{step}"
                for name, file in FILE_COMMAND_FILES.items()})
    env.update({
        "GITHUB_ACTIONS": "true",
        "CI": "true",
        "GITHUB_WORKSPACE": WORKSPACE,
        "HOME": HOME,
        "RUNNER_OS": "Linux",
        "GITHUB_ACTION": "torchvet",
        "GITHUB_EVENT_NAME": "workflow_dispatch",
    })
    return env


# --------------------------------------------------------------------------- GPUs


def parse_gpus(spec: str) -> dict[str, Any]:
    """``--gpus`` as docker's CLI reads it: ``all``, a count ``N`` or ``device=ID[,ID]``
    (indexes or UUIDs); the keyword arguments of ``docker.types.DeviceRequest``."""
    value = spec.strip()
    if value == "all":
        return {"count": -1, "capabilities": [["gpu"]]}
    if value.isdigit():
        if int(value) < 1:
            raise PlanError(f"--gpus {spec}: the count must be at least 1 (or use all)")
        return {"count": int(value), "capabilities": [["gpu"]]}
    if value.startswith("device="):
        ids = [i.strip() for i in value[len("device="):].split(",") if i.strip()]
        if ids and all(re.fullmatch(r"[A-Za-z0-9_.:-]+", i) for i in ids):
            return {"device_ids": ids, "capabilities": [["gpu"]]}
    raise PlanError(f"--gpus {spec!r}: expected all, a count (2) or device=ID[,ID] "
                    "(e.g. device=0,1 or device=GPU-3a2b...)")


def device_requests(spec: str | None) -> list[Any]:
    """``[docker.types.DeviceRequest(capabilities=[["gpu"]], ...)]`` for ``--gpus``."""
    if not spec:
        return []
    from docker.types import DeviceRequest  # lazy: the docker package is an optional extra

    return [DeviceRequest(**parse_gpus(spec))]


# --------------------------------------------------------------------------- checks


def check_options(options: DockerOptions) -> None:
    """Reject what the container would reject, before any container starts."""
    if options.python_version and not _PYTHON.match(options.python_version):
        raise PlanError(f"--python-version {options.python_version}: expected e.g. 3.11")
    if options.image_torch and not TORCH_VERSION.match(options.image_torch):
        raise PlanError(f"--image-torch {options.image_torch}: not a torch version; "
                        "use e.g. 2.4.1")
    url = options.torch_index_url
    if url and not INDEX_URL.match(url):
        raise PlanError(f"--torch-index-url {url!r}: expected an http(s) or file URL, e.g. "
                        "https://download.pytorch.org/whl/cu121")
    if options.gpus:
        parse_gpus(options.gpus)


def check_project(options: DockerOptions) -> Path:
    """PATH must be a directory and the project in it (``--path``) installable, unless
    the install is ``none`` or a custom command. Returns PATH resolved."""
    root = Path(options.path).expanduser()
    if not root.is_dir():
        raise PlanError(f"{options.path} is not a directory; pass your project's directory "
                        "(the one holding pyproject.toml)")
    root = root.resolve()
    project = (root / (options.subpath or ".")).resolve()
    try:
        project.relative_to(root)
    except ValueError:
        raise PlanError(f"--path {options.subpath} lies outside {root}; give it relative "
                        "to PATH") from None
    if not project.is_dir():
        raise PlanError(f"--path {options.subpath}: no such directory in {root}")
    install = (options.install or ".").strip()
    custom = bool(options.install_command) or install in NONE
    if not custom and not any((project / f).is_file() for f in PROJECT_FILES):
        raise PlanError(f"{project} is not a project: it has no pyproject.toml, setup.py or "
                        "setup.cfg; pass your project's directory as PATH (or --path SUBDIR "
                        "inside it), or --install none when it needs no installation")
    return root


# --------------------------------------------------------------------------- build


def build_args(options: DockerOptions) -> dict[str, str]:
    """The Dockerfile's build arguments the options set (the rest keep its defaults)."""
    args = {}
    if options.python_version:
        args["PYTHON_VERSION"] = options.python_version
    if options.image_torch:
        args["TORCH_VERSION"] = options.image_torch
    if options.torch_index_url:
        args["TORCH_INDEX_URL"] = options.torch_index_url
    return args


def base_image(dockerfile: str, args: Mapping[str, str]) -> str | None:
    """The image the (first) ``FROM`` names, with ``ARG`` defaults and ``args`` put in."""
    values: dict[str, str] = {}
    for raw in dockerfile.splitlines():
        line = raw.strip()
        if line.upper().startswith("ARG "):
            name, _, default = line[4:].strip().partition("=")
            values[name.strip()] = args.get(name.strip(), default.strip().strip('"'))
        elif line.upper().startswith("FROM "):
            words = [w for w in line.split()[1:] if not w.startswith("--")]
            if not words:
                return None
            return re.sub(r"\$\{(\w+)\}|\$(\w+)",
                          lambda m: values.get(m.group(1) or m.group(2), ""), words[0])
    return None
