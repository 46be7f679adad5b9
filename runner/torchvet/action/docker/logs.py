"""The container's log as a terminal shows it, and what a cell leaves behind.

The action speaks to the runner in workflow commands (``::group::``, ``::error ...::``).
:class:`LogRenderer` reads them the way the runner does: nothing counts as a command
between ``::stop-commands::TOKEN`` and ``::TOKEN::`` (user code and pip print there), so
a project cannot fake an annotation here either. Outside those blocks, groups become
headings and annotations readable lines; everything else passes through.
:class:`Printer` puts the lines on the terminal, whole and with control characters made
visible; :func:`setup_report` stands in for the report of a cell that wrote none.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TextIO

from ...github.workflow import parse_command
from ...reporters.terminal import printable
from ...results import CheckResult, RunReport, Status, UnitReport
from ..failures import UNKNOWN_CHECK, setup_check

ANNOTATION_LINES = 15  # message lines shown per annotation (the report has them all)


@dataclass
class Annotation:
    level: str
    title: str
    message: str
    file: str | None = None
    line: str | None = None


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


class LogRenderer:
    """Turns the action's log into terminal lines and keeps its annotations."""

    def __init__(self, raw: bool = False) -> None:
        self.raw = raw
        self.token: str | None = None
        self.annotations: list[Annotation] = []

    def feed(self, line: str) -> list[str]:
        """The lines to print for one log line (none for hidden commands)."""
        found = parse_command(line)
        if self.token is not None:  # user output: never a command
            if found is not None and found[0] == self.token:
                self.token = None
                return [line] if self.raw else []
            return [line]
        if found is None:
            return [line]
        name, props, data = found
        shown = [line] if self.raw else None
        if name == "stop-commands":
            self.token = data.strip().lower()
            return shown or []
        if name == "group":
            return shown or [f"▶ {data}"]
        if name == "endgroup":
            return shown or []
        if name in ("error", "warning", "notice"):
            note = Annotation(name, props.get("title", ""), data, props.get("file"),
                              props.get("line"))
            self.annotations.append(note)
            return shown or render_annotation(note)
        return [line]


def render_annotation(note: Annotation) -> list[str]:
    where = f" ({note.file}:{note.line or 1})" if note.file else ""
    head = f"{note.level}: {note.title or 'annotation'}{where}"
    body = note.message.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    lines = [head] + [f"    {text}" for text in body[:ANNOTATION_LINES]]
    if len(body) > ANNOTATION_LINES:
        lines.append(f"    [... {len(body) - ANNOTATION_LINES} more lines]")
    return lines


def read_outputs(text: str) -> dict[str, str]:
    """A ``$GITHUB_OUTPUT`` file as the runner reads it (``k=v`` or ``k<<DELIM``)."""
    values: dict[str, str] = {}
    lines = text.split("\n")
    index = 0
    while index < len(lines):
        line = lines[index]
        index += 1
        eq, heredoc = line.find("="), line.find("<<")
        if eq > 0 and (heredoc < 0 or eq < heredoc):
            values[line[:eq]] = line[eq + 1:]
        elif heredoc > 0:
            name, delimiter = line[:heredoc], line[heredoc + 2:]
            body = []
            while index < len(lines) and lines[index] != delimiter:
                body.append(lines[index])
                index += 1
            index += 1
            values[name] = "\n".join(body)
    return values


# --------------------------------------------------------------------------- setup errors

SETUP_UNIT = "setup"


_UNREACHABLE = ("NewConnectionError", "Failed to establish a new connection",
                "Name or service not known", "Temporary failure in name resolution",
                "Network is unreachable", "ConnectTimeoutError", "ProxyError")


def pip_reason(message: str) -> str:
    """pip's own words: its last ``ERROR:`` line (else the last line), and whether an
    index could not be reached at all (pip then only says nothing matched)."""
    lines = [line.strip() for line in message.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("ERROR:")]
    reason = errors[-1].removeprefix("ERROR:").strip() if errors else (
        lines[-1] if lines else "")
    if any(marker in message for marker in _UNREACHABLE):
        reason += " (a package index could not be reached: check the URL and the network)"
    return reason


def setup_report(*, version: str, label: str, code: int | None,
                 annotations: Sequence[Annotation], tail: Sequence[str],
                 cancelled: bool = False) -> RunReport:
    """The report of a cell that produced none: one ``setup`` unit whose check says why
    (an ``error`` naming pip's reason, or ``cancelled`` after Ctrl-C)."""
    errors = [a for a in annotations if a.level == "error"]
    if cancelled:
        result = CheckResult(
            id=UNKNOWN_CHECK, status=Status.CANCELLED,
            message="interrupted before the checks reported",
            details="\n".join(tail[-20:]))
    elif errors:
        first = errors[0]
        check = setup_check(first.title)
        title = first.title.removeprefix("torchvet: ")
        reason = pip_reason(first.message)
        if check == "setup.torch":
            message = f"torch {version or '(image)'} could not be installed: pip: {reason}"
        elif check == "setup.install":
            message = f"the project could not be installed: pip: {reason}"
        else:
            message = f"{title}: {first.message.splitlines()[0] if first.message else ''}"
        details = "\n\n".join(f"{a.title}\n{a.message}" for a in errors)
        result = CheckResult(id=check, status=Status.ERROR, message=message,
                             details=f"{details}\n\n(container exit code {code})")
    else:
        result = CheckResult(
            id=UNKNOWN_CHECK, status=Status.ERROR,
            message=f"the container exited with code {code} without a report",
            details="last lines of its log:\n" + "\n".join(tail[-30:]))
    unit = UnitReport(name=SETUP_UNIT, kind="setup", label=label, results=[result])
    return RunReport(reports=[unit], torch_version=version, interrupted=cancelled)
