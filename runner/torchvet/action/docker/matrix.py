"""The cells of ``torchvet docker``: one container of the action's image per torch
version, run like the Actions runner runs a container action, and what each left behind.

A cell's container gets the workspace at ``/github/workspace`` (``--workdir`` there), a
temporary ``file_commands`` mount holding ``GITHUB_OUTPUT``, ``GITHUB_STEP_SUMMARY`` &
co., every input as ``INPUT_<NAME>`` and ``GITHUB_ACTIONS=true``. Its log streams to the
terminal (prefixed with the cell's torch in a matrix); its outputs, job summary and JSON
report are read back from the mount, and the reports merged into one.
"""

from __future__ import annotations

import contextlib
import tempfile
import threading
import time
import uuid
from collections import deque
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ...reporters import files, json_report
from ...results import RunReport, merge_runs
from .client import DockerError, connect, explain_run_error, first_line
from .logs import LineBuffer, LogRenderer, Printer, read_outputs, setup_report
from .plan import (
    FILE_COMMAND_FILES,
    FILE_COMMANDS_MOUNT,
    HOME,
    REPORT_FILE,
    WORKSPACE,
    DockerOptions,
    cell_inputs,
    cell_label,
    container_environment,
    device_requests,
    parallel_cells,
)
from .workspace import remove_tree, snapshot

LABEL = "torchvet.docker"
READ_BACK_LIMIT = 16 * 1024 * 1024  # bytes of a file-command file read back from a cell
STOP_SECONDS = 15  # docker stop's grace period: torchvet writes what finished


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

    def stand_in_report(self) -> None:
        """A report for a cell that wrote none: why it could not run, or cancelled."""
        self.setup_failed = not self.cancelled
        self.report = setup_report(
            version=self.version, label=self.label, code=self.code,
            annotations=self.renderer.annotations, tail=list(self.tail),
            cancelled=self.cancelled)


def plan_cells(options: DockerOptions, cpus: int) -> tuple[list[Cell], int]:
    """The cells (one per ``--torch`` version, else one) and how many run at once."""
    versions = options.torch or [""]
    at_once, jobs = parallel_cells(len(versions), options.run.jobs, cpus, options.in_place)
    cells = []
    for version in versions:
        label = cell_label(version)
        cells.append(Cell(version=version, label=label,
                          inputs=cell_inputs(options, version, jobs),
                          prefix=f"[{label}] " if options.torch else "",
                          renderer=LogRenderer(raw=options.raw_log)))
    return cells, at_once


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

    def mounts(self, cell: Cell, scratch: Path, environment: dict[str, str]
               ) -> dict[str, dict[str, str]]:
        """The file_commands mount (its files created), HOME and the workspace: a
        snapshot of the project, or the project itself with ``--in-place``."""
        files, home = scratch / "file_commands", scratch / "home"
        files.mkdir()
        home.mkdir()
        for name in FILE_COMMAND_FILES:
            (files / Path(environment[name]).name).touch()
        volumes = {str(files): {"bind": FILE_COMMANDS_MOUNT, "mode": "rw"},
                   str(home): {"bind": HOME, "mode": "rw"}}
        if self.options.in_place:
            volumes[str(self.root)] = {"bind": WORKSPACE, "mode": "rw"}
            return volumes
        workspace = scratch / "workspace"
        count, size = snapshot(self.root, workspace)
        self.printer.line(f"workspace: a snapshot of {self.root} ({count} files, "
                          f"{size / 1e6:.1f} MB)", cell.prefix)
        volumes[str(workspace)] = {"bind": WORKSPACE, "mode": "rw"}
        if (self.root / ".git").is_dir():  # for setuptools-scm & co., read-only
            (workspace / ".git").mkdir(exist_ok=True)
            volumes[str(self.root / ".git")] = {"bind": f"{WORKSPACE}/.git", "mode": "ro"}
        return volumes

    def _run_cell(self, client: Any, cell: Cell, scratch: Path) -> None:
        environment = container_environment(cell.inputs, uuid.uuid4().hex)
        volumes = self.mounts(cell, scratch, environment)
        if self.cancel.is_set():
            cell.cancelled = True
            return
        api_error = self.docker.errors.APIError
        try:
            container = client.containers.create(
                self.image, working_dir=WORKSPACE, environment=environment,
                volumes=volumes, network_mode=self.options.network,
                device_requests=device_requests(self.options.gpus) or None,
                labels={LABEL: self.run_id, f"{LABEL}.project": str(self.root),
                        f"{LABEL}.cell": cell.label or "default"})
        except api_error as exc:
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
            except api_error as exc:
                raise DockerError(explain_run_error(exc, self.options.gpus)) from None
            try:
                self.stream_log(container, cell)
                cell.code = int(container.wait().get("StatusCode", -1))
            except (self.docker.errors.DockerException, OSError) as exc:
                raise DockerError(
                    f"lost the Docker daemon while {cell.label or 'the container'} ran "
                    f"({first_line(exc)}): check that it still runs (docker info) and "
                    "rerun") from None
        finally:
            cell.seconds = time.monotonic() - started
            with self.lock:
                self.live.pop(container.id, None)
            with contextlib.suppress(Exception):
                container.remove(force=True)
        cell.cancelled = cell.cancelled or (self.cancel.is_set() and cell.code != 0)
        self.collect(cell, scratch / "file_commands", environment)

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

    def collect(self, cell: Cell, mount: Path, environment: dict[str, str]) -> None:
        """Read back what the cell wrote in the file_commands mount: its outputs, job
        summary and JSON report (a stand-in report when it wrote none). The container
        ran code of the project: only regular files are read, never through a symlink
        (one could name a file of this machine), and at most so many bytes."""

        def text(name: str) -> str:
            path = mount / Path(environment[name]).name
            try:
                return files.read_bytes(path, limit=READ_BACK_LIMIT,
                                        follow_symlinks=False).decode("utf-8", "replace")
            except OSError:
                return ""

        cell.outputs = read_outputs(text("GITHUB_OUTPUT"))
        cell.summary = text("GITHUB_STEP_SUMMARY")
        report_path = mount / REPORT_FILE
        if report_path.is_file() or report_path.is_symlink():
            try:
                cell.report = json_report.read(report_path, follow_symlinks=False)
            except json_report.ReportError as exc:
                self.printer.line(f"unreadable report: {exc}", cell.prefix)
        if cell.report is None:
            cell.stand_in_report()
        assert cell.report is not None
        for unit in cell.report.reports:
            unit.label = cell.label
        if cell.outputs:
            shown = " ".join(f"{k}={cell.outputs.get(k, '')}" for k in (
                "conclusion", "passed", "failed", "errors", "warnings", "skipped",
                "not-run"))
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
    """The cells' job summaries, each under its torch (a lone cell's as it is)."""
    if len(cells) == 1 and not cells[0].label:
        return cells[0].summary
    return "\n".join(f"# {c.label}\n\n{c.summary}" for c in cells)
