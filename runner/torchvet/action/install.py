"""The command lines that install torch and the project under test.

torch comes first, from the CPU wheel index (or ``torch-index-url``), so that ``pip
install .`` never pulls a multi-GB CUDA build; in the action's image root installs it
(trusted inputs: a version and an index), wheels only (no build runs as root) and in
isolated mode (``-I``: nothing from the current directory or HOME is imported). The
project is then installed, by the sandbox's account, with the installed torch pinned by
a constraints file, and the torch index as an extra index so torchvision & co. resolve
to builds that match it. pip's failures are explained here.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Mapping, Sequence
from typing import Any

PYPI_INDEXES = {"https://pypi.org/simple", "https://pypi.org/simple/",
                "https://pypi.python.org/simple", "https://pypi.python.org/simple/"}
PROJECT_FILES = ("pyproject.toml", "setup.py", "setup.cfg")


def pip(python: str, *args: str) -> list[str]:
    return [python, "-m", "pip", *args]


def torch_requirement(version: str) -> str:
    """``torch==2.4.*`` for ``2.4``, ``torch==2.4.1`` for ``2.4.1``."""
    release = version.split("+")[0]
    if re.fullmatch(r"[0-9]+\.[0-9]+", release):
        return f"torch=={version}.*"
    return f"torch=={version}"


def torch_matches(installed: str, requested: str) -> bool:
    """Whether the installed torch satisfies ``torch-version`` (a prefix like 2.4 matches
    2.4.1; a local label like +cpu must match when given)."""
    if not requested:
        return True
    if "+" in requested:
        return installed == requested
    public = installed.split("+")[0]
    return public == requested or public.startswith(requested + ".")


def torch_install_command(python: str, version: str, index_url: str) -> list[str]:
    return [python, "-I", "-m", "pip", "install", "--only-binary", ":all:", "--index-url",
            index_url, torch_requirement(version)]


def constraints_text(torch_version: str) -> str:
    return f"torch=={torch_version}\n"


def project_install_command(python: str, args: Sequence[str], constraints: str,
                            index_url: str) -> list[str]:
    """``pip install`` of the project with torch pinned; the torch index is an extra
    index so torchvision & co. resolve to builds matching the installed (CPU) torch."""
    extra = [] if index_url in PYPI_INDEXES else ["--extra-index-url", index_url]
    return pip(python, "install", "--constraint", constraints, *extra, *args)


def needs_project_files(args: Sequence[str] | None) -> bool:
    """Whether ``install`` points pip at the project directory itself."""
    return any(a == "." or a.startswith((".[", "./[")) or a == "./" for a in args or ())


def installed_torch(python: str, env: Mapping[str, str], **popen: Any) -> str:
    """The torch version installed for ``python`` (read from metadata, not imported; in
    isolated mode from ``/``, so no module of the project's directory shadows one)."""
    result = subprocess.run(
        [python, "-I", "-c", "import importlib.metadata as m; print(m.version('torch'))"],
        env=dict(env), capture_output=True, text=True, check=False, cwd="/", **popen)
    return result.stdout.strip() if result.returncode == 0 else ""


def pip_fix(tail: Sequence[str]) -> str:
    """What to do about a failed ``pip install``, from pip's last lines."""
    text = "\n".join(tail)
    if "ResolutionImpossible" in text or "conflicting dependencies" in text:
        return ("The project's requirements conflict with the pinned torch. Set "
                "'torch-version' to a torch the project accepts, or relax its torch "
                "requirement.")
    if "No matching distribution" in text or "Could not find a version" in text:
        return ("A requirement is not on the package index. Check its name and version, "
                "or add the index with 'install: --extra-index-url URL .'.")
    return "Fix the project's build or requirements (see the log group above)."
