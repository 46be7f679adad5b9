"""``torchvet docker``: run the action's image on a project exactly as the GitHub Actions
runner does, locally, for one torch or a matrix of them, and merge the cells' reports.

Each cell is one container of the image with the workspace at ``/github/workspace``
(``--workdir`` there), a temporary ``file_commands`` mount holding ``GITHUB_OUTPUT``,
``GITHUB_STEP_SUMMARY`` & co., every input as ``INPUT_<NAME>`` (hyphens kept) and
``GITHUB_ACTIONS=true``. The container's log streams to the terminal (prefixed with the
cell's torch in a matrix); the cell writes its JSON report into the file_commands mount,
which is read back, labelled with the torch version and merged into one terminal table,
JUnit and JSON report.

The ``docker`` package (``pip install 'torchvet[docker]'``) is imported only when the
command runs, so ``torchvet --help`` imports neither it nor torch.
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import click

from ...checks.catalogue import unknown_patterns
from ...errors import ExitCode, UsageError
from ...project.config import declared_fail_on
from ...reporters import json_report
from ...reporters.terminal import TerminalReporter, printable
from ...results import RunReport, exit_code_for, merge_runs
from ...session import terminate_as_interrupt, write_reports
from .logs import LogRenderer, read_outputs, setup_report
from .plan import (
    BUILD_TAG,
    FILE_COMMAND_FILES,
    FILE_COMMANDS_MOUNT,
    HOME,
    REPORT_FILE,
    WORKSPACE,
    DockerOptions,
    PlanError,
    base_image,
    build_args,
    cell_inputs,
    cell_label,
    check_options,
    check_project,
    container_environment,
    default_image,
    device_requests,
    parallel_cells,
    parse_torch_versions,
    split_list,
)
from .workspace import remove_tree, snapshot

LABEL = "torchvet.docker"
STOP_SECONDS = 15  # docker stop's grace period: torchvet writes what finished
SOURCES = "https://github.com/torchvet/torchvet"
STAND_IN = "scripts/docker/stand-in-base-image.sh"


class DockerError(UsageError):
    """A problem the user must fix; the message is one line that says how (exit 2)."""


# --------------------------------------------------------------------------- output


class Printer:
    """Whole lines to the terminal from several threads; control characters of
    container output are made visible (user code cannot rewrite the terminal)."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stdout
        self.lock = threading.Lock()

    def line(self, text: str = "", prefix: str = "") -> None:
        with self.lock:
            self.stream.write(f"{prefix}{printable(text)}\n")
            self.stream.flush()

    def note(self, text: str) -> None:
        self.line(f"torchvet docker: {text}")


class LineBuffer:
    """Bytes in arbitrary chunks -> whole lines."""

    def __init__(self) -> None:
        self.pending = b""

    def feed(self, chunk: bytes) -> list[str]:
        self.pending += chunk
        *lines, self.pending = self.pending.split(b"\n")
        return [line.decode("utf-8", "replace").rstrip("\r") for line in lines]

    def flush(self) -> list[str]:
        rest, self.pending = self.pending, b""
        return [rest.decode("utf-8", "replace").rstrip("\r")] if rest else []


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
    reason = str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
    return (f"cannot reach the Docker daemon at {host} ({reason}): start it (sudo "
            "systemctl start docker, or open Docker Desktop) or point DOCKER_HOST at a "
            "running one (docker context inspect --format '{{.Endpoints.docker.Host}}' "
            "prints it)")


def load_docker() -> Any:
    try:
        import docker
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


def api_reason(exc: BaseException) -> str:
    reason = getattr(exc, "explanation", None) or str(exc)
    return str(reason).strip().splitlines()[0] if str(reason).strip() else type(exc).__name__


def explain_run_error(exc: BaseException, gpus: str | None) -> str:
    reason = api_reason(exc)
    if "could not select device driver" in reason or (
            gpus and ("nvidia" in reason.lower() or "gpu" in reason.lower())):
        return (f"the Docker daemon cannot give containers GPUs ({reason}): install the "
                "NVIDIA Container Toolkit, run sudo nvidia-ctk runtime configure "
                "--runtime=docker and restart Docker; or drop --gpus")
    return f"docker could not run the container: {reason}"


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
    except docker.errors.APIError as exc:
        return api_reason(exc)
    except docker.errors.DockerException as exc:
        return str(exc).splitlines()[0]
    return None


def have_image(docker: Any, client: Any, name: str) -> bool:
    try:
        client.images.get(name)
        return True
    except docker.errors.ImageNotFound:
        return False
    except docker.errors.APIError as exc:
        raise DockerError(f"docker cannot inspect the image {name}: {api_reason(exc)}"
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
    here = Path(__file__).resolve().parents[4]  # <checkout>/runner/torchvet/action/docker/
    candidate = Path(given).expanduser().resolve() if given else here
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


# --------------------------------------------------------------------------- cells


@dataclass
class Cell:
    """One container: a torch version of the matrix (``""``: the image's torch)."""

    version: str
    label: str
    inputs: dict[str, str]
    prefix: str = ""
    code: int | None = None
    report: RunReport | None = None
    outputs: dict[str, str] = field(default_factory=dict)
    summary: str = ""
    renderer: LogRenderer = field(default_factory=LogRenderer)
    tail: deque[str] = field(default_factory=lambda: deque(maxlen=60))
    cancelled: bool = False
    setup_failed: bool = False
    seconds: float = 0.0


class Matrix:
    """Runs the cells, at most ``at_once`` at a time; Ctrl-C stops every container."""

    def __init__(self, docker: Any, client: Any, image: str, options: DockerOptions,
                 root: Path, printer: Printer) -> None:
        self.docker = docker
        self.client = client
        self.image = image
        self.options = options
        self.root = root
        self.printer = printer
        self.run_id = uuid.uuid4().hex[:12]
        self.lock = threading.Lock()
        self.cancel = threading.Event()
        self.live: dict[str, Any] = {}
        self.interrupted = False

    # ----------------------------------------------------------------- orchestration

    def run(self, cells: list[Cell], at_once: int) -> None:
        pool = ThreadPoolExecutor(max_workers=at_once, thread_name_prefix="cell")
        futures: dict[Future[None], Cell] = {pool.submit(self.run_cell, c): c for c in cells}
        failure: BaseException | None = None
        try:
            pending = set(futures)
            while pending:
                try:
                    done, pending = wait(pending, timeout=0.5, return_when=FIRST_COMPLETED)
                except KeyboardInterrupt:
                    self.interrupt()
                    continue
                for future in done:
                    error = future.exception() if not future.cancelled() else None
                    if error is not None and failure is None:
                        failure = error
                        self.stop_all()
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
        for future, cell in futures.items():
            if future.cancelled():
                cell.cancelled = True
        if failure is not None:
            raise failure

    def interrupt(self) -> None:
        """First Ctrl-C: stop every container (torchvet writes what finished); a second
        one kills them."""
        if self.interrupted:
            self.printer.note("killing the containers")
            self.stop_all(kill=True)
            return
        self.interrupted = True
        self.printer.note("interrupted: stopping the containers (Ctrl-C again to kill)")
        self.stop_all()

    def stop_all(self, kill: bool = False) -> None:
        self.cancel.set()
        with self.lock:
            containers = list(self.live.values())

        def stop(container: Any) -> None:
            with contextlib.suppress(Exception):
                if kill:
                    container.kill()
                else:
                    container.stop(timeout=STOP_SECONDS)

        threads = [threading.Thread(target=stop, args=(c,), daemon=True) for c in containers]
        for thread in threads:
            thread.start()
        try:
            for thread in threads:
                thread.join()
        except KeyboardInterrupt:
            if not kill:
                self.stop_all(kill=True)

    # ----------------------------------------------------------------- one cell

    def run_cell(self, cell: Cell) -> None:
        if self.cancel.is_set():
            cell.cancelled = True
            return
        client = connect(self.docker, timeout=None)
        scratch = Path(tempfile.mkdtemp(prefix="torchvet-docker-"))
        try:
            self._run_cell(client, cell, scratch)
        finally:
            self.clean(client, scratch)
            with contextlib.suppress(Exception):
                client.close()

    def clean(self, client: Any, scratch: Path) -> None:
        """Remove the cell's temporary tree; what a container left there as root (a
        non-root user cannot delete it) is removed by a throwaway container first."""
        if remove_tree(scratch):
            return
        with contextlib.suppress(Exception):
            client.containers.run(
                self.image, entrypoint=["rm", "-rf", "/scratch/workspace",
                                        "/scratch/file_commands", "/scratch/home"],
                volumes={str(scratch): {"bind": "/scratch", "mode": "rw"}},
                network_mode="none", remove=True, labels={LABEL: self.run_id})
        if not remove_tree(scratch):
            self.printer.note(f"could not remove {scratch} (files a container left as "
                              f"root); remove it with sudo rm -rf {scratch}")

    def _run_cell(self, client: Any, cell: Cell, scratch: Path) -> None:
        files, home = scratch / "file_commands", scratch / "home"
        files.mkdir()
        home.mkdir()
        step = uuid.uuid4().hex
        environment = container_environment(cell.inputs, step)
        for name in FILE_COMMAND_FILES:
            (files / Path(environment[name]).name).touch()
        volumes = {str(files): {"bind": FILE_COMMANDS_MOUNT, "mode": "rw"},
                   str(home): {"bind": HOME, "mode": "rw"}}
        if self.options.in_place:
            volumes[str(self.root)] = {"bind": WORKSPACE, "mode": "rw"}
        else:
            workspace = scratch / "workspace"
            count, size = snapshot(self.root, workspace)
            self.printer.line(f"workspace: a snapshot of {self.root} ({count} files, "
                              f"{size / 1e6:.1f} MB)", cell.prefix)
            volumes[str(workspace)] = {"bind": WORKSPACE, "mode": "rw"}
            if (self.root / ".git").is_dir():  # for setuptools-scm & co., read-only
                (workspace / ".git").mkdir(exist_ok=True)
                volumes[str(self.root / ".git")] = {"bind": f"{WORKSPACE}/.git", "mode": "ro"}
        if self.cancel.is_set():
            cell.cancelled = True
            return
        try:
            container = client.containers.create(
                self.image, working_dir=WORKSPACE, environment=environment,
                volumes=volumes, network_mode=self.options.network,
                device_requests=device_requests(self.options.gpus) or None,
                labels={LABEL: self.run_id, f"{LABEL}.project": str(self.root),
                        f"{LABEL}.cell": cell.label or "default"})
        except self.docker.errors.APIError as exc:
            raise DockerError(explain_run_error(exc, self.options.gpus)) from None
        with self.lock:
            self.live[container.id] = container
        started = time.monotonic()
        try:
            if self.cancel.is_set():
                cell.cancelled = True
                return
            try:
                container.start()
            except self.docker.errors.APIError as exc:
                raise DockerError(explain_run_error(exc, self.options.gpus)) from None
            try:
                self.stream_log(container, cell)
                cell.code = int(container.wait().get("StatusCode", -1))
            except (self.docker.errors.DockerException, OSError) as exc:
                raise DockerError(
                    f"lost the Docker daemon while {cell.label or 'the container'} ran "
                    f"({api_reason(exc)}): check that it still runs (docker info) and "
                    "rerun") from None
        finally:
            cell.seconds = time.monotonic() - started
            with self.lock:
                self.live.pop(container.id, None)
            with contextlib.suppress(Exception):
                container.remove(force=True)
        cell.cancelled = cell.cancelled or (self.cancel.is_set() and cell.code != 0)
        self.collect(cell, files, environment)

    def stream_log(self, container: Any, cell: Cell) -> None:
        buffer = LineBuffer()

        def show(line: str) -> None:
            cell.tail.append(line)
            for text in cell.renderer.feed(line):
                self.printer.line(text, cell.prefix)

        for chunk in container.logs(stream=True, follow=True):
            for line in buffer.feed(chunk):
                show(line)
        for line in buffer.flush():
            show(line)

    def collect(self, cell: Cell, files: Path, environment: dict[str, str]) -> None:
        """Read back what the cell wrote in the file_commands mount: its outputs, job
        summary and JSON report (a synthetic report when it wrote none)."""

        def text(name: str) -> str:
            path = files / Path(environment[name]).name
            try:
                return path.read_text(encoding="utf-8", errors="replace")
            except OSError:
                return ""

        cell.outputs = read_outputs(text("GITHUB_OUTPUT"))
        cell.summary = text("GITHUB_STEP_SUMMARY")
        report_path = files / REPORT_FILE
        if report_path.is_file():
            try:
                cell.report = json_report.read(report_path)
            except ValueError as exc:
                self.printer.line(f"unreadable report: {exc}", cell.prefix)
        if cell.report is None:
            cell.setup_failed = not cell.cancelled
            cell.report = setup_report(
                version=cell.version, label=cell.label, code=cell.code,
                annotations=cell.renderer.annotations, tail=list(cell.tail),
                cancelled=cell.cancelled)
        for unit in cell.report.reports:
            unit.label = cell.label
        if cell.outputs:
            shown = " ".join(f"{k}={cell.outputs.get(k, '')}" for k in (
                "conclusion", "passed", "failed", "errors", "warnings", "skipped"))
            self.printer.line(f"outputs: {shown} (exit code {cell.code}, "
                              f"{cell.seconds:.0f}s)", cell.prefix)


# --------------------------------------------------------------------------- reports


def merge_cells(cells: list[Cell]) -> RunReport:
    runs = [c.report for c in cells if c.report is not None]
    merged = merge_runs(runs)
    versions = [r.torch_version for r in runs if r.torch_version]
    merged.torch_version = ", ".join(dict.fromkeys(versions))
    merged.interrupted = any(r.interrupted for r in runs) or any(c.cancelled for c in cells)
    return merged


def summaries(cells: list[Cell]) -> str:
    if len(cells) == 1 and not cells[0].label:
        return cells[0].summary
    return "\n".join(f"# {c.label}\n\n{c.summary}" for c in cells)


def write_summary(cells: list[Cell], path: str, printer: Printer) -> None:
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(summaries(cells), encoding="utf-8")
    printer.line(f"job summary: {path}")


# --------------------------------------------------------------------------- main


def plan_cells(options: DockerOptions, cpus: int) -> tuple[list[Cell], int]:
    versions = options.torch or [""]
    at_once, jobs = parallel_cells(len(versions), options.jobs, cpus, options.in_place)
    cells = []
    for version in versions:
        label = cell_label(version)
        cells.append(Cell(version=version, label=label,
                          inputs=cell_inputs(options, version, jobs),
                          prefix=f"[{label}] " if options.torch else "",
                          renderer=LogRenderer(raw=options.raw_log)))
    return cells, at_once


def run(options: DockerOptions, stream: TextIO | None = None,
        connect_docker: Callable[[], tuple[Any, Any]] | None = None) -> int:
    """The whole command; raises :class:`DockerError` or :class:`PlanError` for what the
    user must fix, returns the exit code otherwise."""

    printer = Printer(stream)
    check_options(options)
    unknown = unknown_patterns(split_list(options.checks))
    if unknown:
        raise PlanError(f"--checks {', '.join(unknown)} matches no check; run "
                        "`torchvet checks` for the ids")
    root = check_project(options)
    if options.gpus and options.device == "cpu":
        printer.note("--gpus without --device cuda: the checks run on the CPU")

    with terminate_as_interrupt():
        try:
            docker, client = connect_docker() if connect_docker else _connect()
            if options.build:
                image = build_image(docker, client, options, printer)
            else:
                image = options.image or default_image()
                ensure_image(docker, client, image, printer)
        except KeyboardInterrupt:
            printer.note("interrupted before any container started")
            return ExitCode.INTERRUPTED
        cpus = int(_info(client).get("NCPU") or os.cpu_count() or 1)
        cells, at_once = plan_cells(options, cpus)
        where = "in place" if options.in_place else "as a snapshot (your tree is not written)"
        printer.note(f"{image} on {root}, mounted {where} · "
                     f"{len(cells)} cell(s), {at_once} at a time"
                     + (f" · torch {', '.join(options.torch)}" if options.torch else ""))
        matrix = Matrix(docker, client, image, options, root, printer)
        try:
            matrix.run(cells, at_once)
        except KeyboardInterrupt:  # between the cells' end and here
            matrix.interrupt()
    for cell in cells:  # never started, or stopped before it reported
        if cell.report is None:
            cell.cancelled = True
            cell.report = setup_report(version=cell.version, label=cell.label,
                                       code=cell.code, annotations=cell.renderer.annotations,
                                       tail=list(cell.tail), cancelled=True)


    fail_on = options.fail_on or declared_fail_on(root / options.subpath) or "failure"
    merged = merge_cells(cells)
    terminal = TerminalReporter(stream=printer.stream, total=len(merged.reports))
    terminal.write()
    terminal.header(f"torchvet docker · {image} · {len(cells)} cell(s)"
                    + (f": {', '.join(c.label for c in cells)}" if options.torch else ""))
    terminal.finish(merged, fail_on)
    write_reports(merged, terminal, fail_on, junit_path=options.junit,
                  json_path=options.json_path)
    if options.summary:
        write_summary(cells, options.summary, printer)
    if matrix.interrupted or any(c.cancelled for c in cells):
        kept = [p for p in (options.junit, options.json_path, options.summary) if p]
        print("torchvet docker: interrupted: every container was stopped and removed"
              + (f"; partial reports in {', '.join(kept)}" if kept else ""), file=sys.stderr)
        return ExitCode.INTERRUPTED
    code = exit_code_for(merged, fail_on)
    if any(c.setup_failed for c in cells):
        code = max(code, ExitCode.FAILED)  # as in CI: a cell that could not run fails
    return code


def _connect() -> tuple[Any, Any]:
    docker = load_docker()
    return docker, connect(docker)


def _info(client: Any) -> dict[str, Any]:
    try:
        return dict(client.info())
    except Exception:
        return {}


# --------------------------------------------------------------------------- the command


@click.command("docker", context_settings={"max_content_width": 100})
@click.argument("path", default=".", type=click.Path(file_okay=False, dir_okay=True))
@click.option("--checks", multiple=True, metavar="PATTERN",
              help="Checks to run (input checks): areas, ids or globs; -prefix excludes. "
                   "Repeatable or comma-separated.")
@click.option("-k", "--models", multiple=True, metavar="GLOB",
              help="Only factories whose name matches (input models).")
@click.option("--exclude", multiple=True, metavar="GLOB",
              help="Leave out factories whose name matches (input exclude).")
@click.option("--seed", type=click.IntRange(min=0), default=None, help="Input seed.")
@click.option("--fail-on", type=click.Choice(["failure", "warning", "never"]), default=None,
              help="What makes the exit code 1 (input fail-on) [default: the project's "
                   "fail_on, else failure].")
@click.option("--timeout", type=click.FloatRange(min=0, min_open=True), default=None,
              metavar="SECONDS", help="Per-unit time limit (input timeout).")
@click.option("-j", "--jobs", type=click.IntRange(min=1), default=None,
              help="Units checked at once in total: at most N matrix cells run at a time "
                   "and share N (input jobs) [default: the daemon's cores].")
@click.option("--shard", metavar="I/N", default=None, help="Input shard.")
@click.option("--changed-since", metavar="REF", default=None,
              help="Input changed-since: only the units a change since this git ref can "
                   "affect.")
@click.option("--device", type=click.Choice(["cpu", "cuda", "auto"]), default="cpu",
              show_default=True, help="Input device; cuda needs --gpus and a CUDA torch.")
@click.option("--junit", type=click.Path(dir_okay=False), default=None,
              help="Write the merged JUnit XML here (a testsuite per unit and torch).")
@click.option("--json", "json_path", type=click.Path(dir_okay=False), default=None,
              help="Write the merged JSON report here.")
@click.option("--summary", type=click.Path(dir_okay=False), default=None,
              help="Write the cells' job summaries (Markdown) here.")
@click.option("--torch", "torch", multiple=True, metavar="VERSIONS",
              help="A matrix: one container per torch version (input torch-version), "
                   "e.g. --torch 2.3.1,2.4.1. Default: the image's torch.")
@click.option("--torch-index-url", metavar="URL", default=None,
              help="Index torch is installed from (input torch-index-url; with --build also "
                   "the build arg TORCH_INDEX_URL), e.g. https://download.pytorch.org/whl/"
                   "cu121 [default: the image's, the CPU wheels].")
@click.option("--install", metavar="ARGS", default=None,
              help="Input install: pip arguments, or none [default: .].")
@click.option("--install-command", metavar="CMD", default=None, help="Input install-command.")
@click.option("--path", "subpath", metavar="SUBDIR", default=".", show_default=True,
              help="Input path: the project's directory inside PATH (monorepos).")
@click.option("--image", metavar="NAME", default=None,
              help=f"Image to run [default: {default_image()}; with --build: "
                   f"{BUILD_TAG}, the tag built].")
@click.option("--build", is_flag=True,
              help="Build the image from the action's own Dockerfile first.")
@click.option("--context", metavar="DIR", default=None,
              help="With --build: the torchvet sources [default: this installation's].")
@click.option("--python-version", metavar="X.Y", default=None,
              help="With --build: build arg PYTHON_VERSION [default: the Dockerfile's].")
@click.option("--image-torch", metavar="VERSION", default=None,
              help="With --build: build arg TORCH_VERSION, the image's own torch.")
@click.option("--gpus", metavar="all|N|device=ID", default=None,
              help="GPUs for the containers (NVIDIA Container Toolkit), as docker run --gpus.")
@click.option("--network", metavar="NAME", default="host", show_default=True,
              help="Network of the containers and the build (the entrypoint pip-installs).")
@click.option("--in-place", is_flag=True,
              help="Mount PATH itself instead of a snapshot: pip's build files stay in it "
                   "and matrix cells run one at a time.")
@click.option("--raw-log", is_flag=True,
              help="Show the container's log as the runner gets it (workflow commands).")
def docker_command(path: str, checks: tuple[str, ...], models: tuple[str, ...],
                   exclude: tuple[str, ...], seed: int | None, fail_on: str | None,
                   timeout: float | None, jobs: int | None, shard: str | None,
                   changed_since: str | None, device: str,
                   junit: str | None, json_path: str | None, summary: str | None,
                   torch: tuple[str, ...], torch_index_url: str | None,
                   install: str | None, install_command: str | None, subpath: str,
                   image: str | None, build: bool, context: str | None,
                   python_version: str | None, image_torch: str | None, gpus: str | None,
                   network: str, in_place: bool, raw_log: bool) -> None:
    """Run the GitHub Action's image on the project at PATH (default: .) the way the
    Actions runner does, to reproduce a CI failure locally; with --torch, once per torch
    version, and merge the reports.

    \b
        torchvet docker                              # the published image, as in CI
        torchvet docker --build                      # from this torchvet's Dockerfile
        torchvet docker --torch 2.3.1,2.4.1 -j 4 --junit matrix.xml
        torchvet docker --gpus all --device cuda --build \\
            --torch-index-url https://download.pytorch.org/whl/cu121

    Exit codes: 0 all good, 1 a check (or a cell's setup) failed, 2 Docker or usage
    problem, 130 interrupted.
    """
    options = DockerOptions(
        path=path, subpath=subpath, image=image, build=build, context=context,
        python_version=python_version, image_torch=image_torch,
        torch=[], torch_index_url=torch_index_url, install=install,
        install_command=install_command, checks=checks, models=models, exclude=exclude,
        fail_on=fail_on, seed=seed, timeout=timeout, jobs=jobs, shard=shard,
        changed_since=changed_since, device=device,
        gpus=gpus, network=network, in_place=in_place, junit=junit, json_path=json_path,
        summary=summary, raw_log=raw_log)
    options.torch = parse_torch_versions(torch)
    raise SystemExit(run(options))
