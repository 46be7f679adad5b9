"""The Docker daemon and the action's image for ``torchvet docker``: connecting, finding,
pulling or building the image, and what to do when any of it fails.

The ``docker`` package (``pip install 'torchvet[docker]'``) is imported only by
:func:`load_docker`, when the command runs: ``torchvet --help`` imports neither it nor
torch. Every problem the user must fix is a :class:`DockerError` whose one-line message
names the fix (exit code 2).
"""

from __future__ import annotations

import contextlib
import os
import time
from pathlib import Path
from typing import Any

from ...errors import UsageError
from .logs import LineBuffer, Printer
from .plan import BUILD_TAG, DockerOptions, base_image, build_args

SOURCES = "https://github.com/torchvet/torchvet"
STAND_IN = "scripts/docker/stand-in-base-image.sh"
# the checkout this torchvet runs from: <root>/runner/torchvet/action/docker/client.py
CHECKOUT = Path(__file__).resolve().parents[4]


class DockerError(UsageError):
    """A problem the user must fix; the message is one line that says how (exit 2)."""


def first_line(exc: BaseException) -> str:
    """The daemon's reason (its ``explanation`` when it gave one), first line only."""
    reason = str(getattr(exc, "explanation", None) or exc).strip()
    return reason.splitlines()[0] if reason else type(exc).__name__


# --------------------------------------------------------------------------- the daemon


def docker_host() -> str:
    return os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"


def explain_connection_error(exc: BaseException, host: str | None = None) -> str:
    """One line naming the fix for a daemon the client cannot talk to."""
    host = host or docker_host()
    text = f"{exc!r} {exc}"
    if "Permission denied" in text or "PermissionError" in text:
        socket = host.removeprefix("unix://")
        return (f"permission denied on the Docker socket {socket}: add your user to the "
                "docker group (sudo usermod -aG docker $USER, then log in again) or run "
                "with sudo; for rootless Docker set DOCKER_HOST=unix://$XDG_RUNTIME_DIR/"
                "docker.sock")
    return (f"cannot reach the Docker daemon at {host} ({first_line(exc)[:200]}): start it "
            "(sudo systemctl start docker, or open Docker Desktop) or point DOCKER_HOST at "
            "a running one (docker context inspect --format '{{.Endpoints.docker.Host}}' "
            "prints it)")


def explain_run_error(exc: BaseException, gpus: str | None) -> str:
    reason = first_line(exc)
    if "could not select device driver" in reason or (
            gpus and ("nvidia" in reason.lower() or "gpu" in reason.lower())):
        return (f"the Docker daemon cannot give containers GPUs ({reason}): install the "
                "NVIDIA Container Toolkit, run sudo nvidia-ctk runtime configure "
                "--runtime=docker and restart Docker; or drop --gpus")
    return f"docker could not run the container: {reason}"


def load_docker() -> Any:
    try:
        import docker  # lazy: an optional extra, and slow to import
    except ImportError:
        raise DockerError("torchvet docker needs the docker package: "
                          "pip install 'torchvet[docker]'") from None
    return docker


def connect(docker: Any, timeout: float | None = 30) -> Any:
    """A client of the daemon DOCKER_HOST (or the current Docker context) names, pinged;
    ``timeout`` None for the long-lived calls (logs, wait, build)."""
    try:
        client = docker.from_env(timeout=timeout)
        client.ping()
    except Exception as exc:  # DockerException, requests' ConnectionError, ...
        raise DockerError(explain_connection_error(exc)) from None
    return client


def daemon_cpus(client: Any) -> int:
    """The daemon's cores (this machine's when it does not say)."""
    try:
        info = dict(client.info())
    except Exception:  # an old or odd daemon: not worth failing the run
        info = {}
    return int(info.get("NCPU") or os.cpu_count() or 1)


# --------------------------------------------------------------------------- the image


def pull(docker: Any, client: Any, name: str, printer: Printer) -> str | None:
    """Pull ``name``; None when done, else the daemon's reason."""
    repository, tag = docker.utils.parse_repository_tag(name)
    printer.note(f"{name} is not here; pulling it")
    try:
        for event in client.api.pull(repository, tag=tag or "latest", stream=True,
                                     decode=True):
            if isinstance(event, dict) and event.get("error"):
                return str(event["error"]).strip()
    except docker.errors.DockerException as exc:
        return first_line(exc)
    return None


def have_image(docker: Any, client: Any, name: str) -> bool:
    try:
        client.images.get(name)
        return True
    except docker.errors.ImageNotFound:
        return False
    except docker.errors.APIError as exc:
        raise DockerError(f"docker cannot inspect the image {name}: {first_line(exc)}"
                          ) from None


def ensure_image(docker: Any, client: Any, name: str, printer: Printer) -> None:
    if have_image(docker, client, name):
        return
    reason = pull(docker, client, name, printer)
    if reason is not None:
        raise DockerError(
            f"the image {name} is not here and cannot be pulled ({reason}): build it from "
            "the torchvet sources with torchvet docker --build (offline, "
            f"{STAND_IN} provides its base image first), or pass --image NAME of an "
            "image you have")


def find_context(given: str | None) -> Path:
    """The action's sources: --context, else the checkout this torchvet runs from."""
    candidate = Path(given).expanduser().resolve() if given else CHECKOUT
    if (candidate / "Dockerfile").is_file() and (candidate / "entrypoint.py").is_file():
        return candidate
    where = f"--context {given} holds" if given else "this torchvet installation has"
    raise DockerError(f"{where} no Dockerfile and entrypoint.py to build the action from: "
                      f"git clone {SOURCES} and pass --context DIR, or drop --build to use "
                      "the published image")


def build_image(docker: Any, client: Any, options: DockerOptions, printer: Printer) -> str:
    """Build the action's image from its own Dockerfile, streaming the build's output."""
    context = find_context(options.context)
    tag = options.image or BUILD_TAG
    args = build_args(options)
    base = base_image((context / "Dockerfile").read_text(encoding="utf-8"), args)
    if base and not have_image(docker, client, base):
        reason = pull(docker, client, base, printer)
        if reason is not None:
            raise DockerError(
                f"the base image {base} is not here and cannot be pulled ({reason}): "
                f"without registry access build a stand-in from Debian packages with "
                f"{STAND_IN} {base} (in the torchvet sources, needs root and debootstrap), "
                "or pick another --python-version")
    shown = " ".join(f"--build-arg {k}={v}" for k, v in args.items())
    printer.note(f"building {tag} from {context / 'Dockerfile'} {shown}".rstrip())
    started = time.monotonic()
    lines = LineBuffer()
    stream = client.api.build(path=str(context), tag=tag, buildargs=args, rm=True,
                              forcerm=True, decode=True, pull=False,
                              network_mode=options.network)
    try:
        for chunk in stream:
            if not isinstance(chunk, dict):
                continue
            if chunk.get("error"):
                message = str(chunk["error"]).strip().splitlines()
                raise DockerError(f"docker build failed: {message[-1] if message else '?'} "
                                  "(the build log above has the details)")
            text = chunk.get("stream") or (f"{chunk['status']}\n" if chunk.get("status")
                                           else "")
            for line in lines.feed(str(text).encode()):
                printer.line(line, "build | ")
    finally:
        with contextlib.suppress(Exception):
            stream.close()
    for line in lines.flush():
        printer.line(line, "build | ")
    if not have_image(docker, client, tag):
        raise DockerError(f"docker build did not produce {tag}; see the build log above")
    printer.note(f"built {tag} in {time.monotonic() - started:.1f}s")
    return tag


def open_image(docker: Any, client: Any, options: DockerOptions, printer: Printer,
               default: str) -> str:
    """The image to run: built (``--build``), else ``--image`` or ``default``, pulled when
    it is not here."""
    if options.build:
        return build_image(docker, client, options, printer)
    image = options.image or default
    ensure_image(docker, client, image, printer)
    return image
