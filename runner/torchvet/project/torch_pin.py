"""Whether the torch a run will import is the one the project means: the version its
pyproject pins (``torch==X`` in ``[project].dependencies``), and a CPU build on a machine
without a GPU (a CUDA build there is gigabytes pip pulled in by accident, typically
while installing torchvision). Read from package metadata and ``/dev``: torch is never
imported here, and the run prints what this finds once, before the units start."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from importlib.metadata import PackageNotFoundError, requires, version
from pathlib import Path

_PIN = re.compile(r"^\s*torch\s*==\s*([0-9][^;,\s]*)", re.I)
CPU_INDEX = "https://download.pytorch.org/whl/cpu"


def pinned_torch(data: Mapping[str, object]) -> str | None:
    """The ``torch==X`` of the project's ``[project].dependencies``, if any."""
    project = data.get("project")
    deps = project.get("dependencies") if isinstance(project, dict) else None
    for dep in deps if isinstance(deps, list) else []:
        found = _PIN.match(str(dep))
        if found:
            return found.group(1)
    return None


def is_cuda_build(installed: str, requirements: Iterable[str]) -> bool:
    """A ``+cuXXX`` local version, or the PyPI Linux wheel that requires nvidia-* packages."""
    if "+cu" in installed:
        return True
    return "+" not in installed and any(r.lower().startswith("nvidia-") for r in requirements)


def has_nvidia_gpu(dev: Path = Path("/dev")) -> bool:
    return any(dev.glob("nvidia[0-9]*"))


def torch_warnings(installed: str | None, pinned: str | None, cuda_build: bool,
                   gpu: bool) -> list[str]:
    """What to tell the user about the installed torch (empty when all is as meant)."""
    if installed is None:
        return []
    out = []
    public = installed.split("+")[0]
    if pinned and public != pinned.split("+")[0]:
        out.append(
            f"torch {installed} is installed but pyproject.toml pins torch=={pinned}: "
            f"results may differ from CI; pip install torch=={pinned}, and keep it when "
            "adding packages with a constraint: pip install torchvision -c <(echo "
            f"torch=={pinned})")
    if cuda_build and not gpu:
        out.append(
            f"torch {installed} is a CUDA build but this machine has no NVIDIA GPU (gigabytes "
            f"of CUDA libraries for nothing, slower start); the CPU build: pip install "
            f"torch=={public} --index-url {CPU_INDEX}")
    return out


def check_torch(data: Mapping[str, object]) -> list[str]:
    """:func:`torch_warnings` for this environment and the project's pyproject data."""
    try:
        installed = version("torch")
        requirements = requires("torch") or []
    except PackageNotFoundError:
        return []
    return torch_warnings(installed, pinned_torch(data), is_cuda_build(installed, requirements),
                          has_nvidia_gpu())
