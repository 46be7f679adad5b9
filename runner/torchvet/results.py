"""Result records: what every check decides, and how it round-trips through JSON.

Nothing here imports torch: the parent process, the reporters and ``torchvet merge``
only ever read results.
"""

from __future__ import annotations

import enum
import re
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

SCHEMA_VERSION = 1

# Caps on text that comes from user code (bytes of UTF-8), so one string cannot flood a
# report: the verdict keeps its head, tracebacks and captured output keep their tail.
ID_LIMIT = 256
NAME_LIMIT = 1024
MESSAGE_LIMIT = 16 * 1024
DETAILS_LIMIT = 64 * 1024
OUTPUT_LIMIT = 64 * 1024


class Status(enum.Enum):
    """Outcome of one check for one model or dataset."""

    PASSED = "passed"
    FAILED = "failed"
    ERROR = "error"
    SKIPPED = "skipped"
    WARNED = "warned"
    XFAILED = "xfailed"
    XPASSED = "xpassed"
    CANCELLED = "cancelled"
    NOT_RUN = "not_run"  # the unit errored (see UNIT_ID) before this check could run

    @classmethod
    def from_str(cls, value: str) -> Status:
        try:
            return cls(value)
        except ValueError:
            raise ValueError(
                f"unknown status {value!r}; expected one of {', '.join(s.value for s in cls)}"
            ) from None

    @property
    def label(self) -> str:
        """The status as reports print it (``not run``)."""
        return self.value.replace("_", " ")

    @property
    def is_bad(self) -> bool:
        """Counts against the run under ``--fail-on failure``."""
        return self in (Status.FAILED, Status.ERROR, Status.XPASSED)

    @property
    def severity(self) -> int:
        """Ordering for "most important first" (higher is worse)."""
        return _SEVERITY[self]

    @property
    def problem_rank(self) -> int:
        """Where a problem of this status goes in a report: failures (the model is
        wrong) before errors (it could not be checked) before warnings; -1: no problem."""
        return _PROBLEM_RANK.get(self, -1)


_SEVERITY = {
    Status.ERROR: 7,
    Status.FAILED: 6,
    Status.XPASSED: 5,
    Status.WARNED: 4,
    Status.CANCELLED: 3,
    Status.NOT_RUN: 2,
    Status.XFAILED: 2,
    Status.SKIPPED: 1,
    Status.PASSED: 0,
}


_PROBLEM_RANK = {Status.FAILED: 0, Status.XPASSED: 1, Status.ERROR: 2, Status.WARNED: 3}

# The result that stands for the whole unit: it could not be built, or its worker died
# before (or between) its checks. Its checks are then ``not_run``, citing it, so one
# broken unit is one problem in every report.
UNIT_ID = "unit"
# Statuses that say nothing about the model: a unit with passes and these has passed.
_INDECISIVE = frozenset({Status.SKIPPED, Status.XFAILED, Status.NOT_RUN})


@dataclass
class CheckResult:
    """The verdict of one check: a ``CallInfo``-style record of its outcome.

    ``message`` is the one-line verdict (it names the culprit and the fix); ``details``
    holds everything else (tracebacks, tables). ``file``/``line`` point at the culprit,
    relative to the report root where possible. ``data`` is structured evidence for the
    reporters (``{"curves": {label: [loss, ...]}, "table": {"columns": [...], "rows":
    [...]}}``); plain JSON, absent from the report when empty. ``peak_memory``: the
    worker's own resident bytes at their peak during the check (0: not measured).
    """

    id: str
    status: Status
    message: str = ""
    details: str = ""
    file: str | None = None
    line: int | None = None
    duration: float = 0.0
    data: dict[str, Any] = field(default_factory=dict)
    peak_memory: int = 0

    @property
    def area(self) -> str:
        return self.id.split(".", 1)[0]

    @property
    def is_unit(self) -> bool:
        """The result stands for the whole unit (:data:`UNIT_ID`), not one check."""
        return self.id == UNIT_ID

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": self.id,
            "status": self.status.value,
            "message": self.message,
            "details": self.details,
            "file": self.file,
            "line": self.line,
            "duration": round(self.duration, 6),
        } | ({"peak_memory": self.peak_memory} if self.peak_memory else {})
        if self.data:
            out["data"] = self.data
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> CheckResult:
        return cls(
            id=str(data["id"]),
            status=Status.from_str(str(data["status"])),
            message=str(data.get("message") or ""),
            details=str(data.get("details") or ""),
            file=data.get("file"),
            line=int(data["line"]) if data.get("line") is not None else None,
            duration=float(data.get("duration") or 0.0),
            data=dict(data.get("data") or {}),
            peak_memory=int(data.get("peak_memory") or 0),
        )


@dataclass
class UnitReport:
    """All results for one unit (a model or a dataset factory). ``peak_memory``: the
    unit's own peak resident bytes (beyond what its worker shares with the fork server;
    0: not measured), which ``--durations`` feeds back to the scheduler."""

    name: str
    kind: str = "model"
    dist: str = ""
    target: str = ""
    file: str | None = None
    line: int | None = None
    results: list[CheckResult] = field(default_factory=list)
    duration: float = 0.0
    label: str = ""
    output: str = ""
    peak_memory: int = 0
    # against a baseline: params/flops/activation_bytes [before, after], outputs_changed,
    # checkpoint_compatible, baseline (the job summary's Model changes row)
    changes: dict[str, Any] = field(default_factory=dict)

    @property
    def display_name(self) -> str:
        """Name used in reports; ``label`` distinguishes matrix cells (``model[torch 2.4]``)."""
        return f"{self.name}[{self.label}]" if self.label else self.name

    @property
    def status(self) -> Status:
        """The worst status among the results; skips and xfails only count when nothing
        else ran (a unit with passes and a skip has passed)."""
        statuses = {r.status for r in self.results}
        decisive = statuses - _INDECISIVE
        if decisive:
            return max(decisive, key=lambda s: s.severity)
        if statuses:
            return max(statuses, key=lambda s: s.severity)
        return Status.PASSED

    def counts(self) -> Counter[Status]:
        return Counter(r.status for r in self.results)

    def check_counts(self) -> Counter[Status]:
        """Like :meth:`counts`, without the unit's own result (:data:`UNIT_ID`)."""
        return Counter(r.status for r in self.results if not r.is_unit)

    @property
    def unit_error(self) -> CheckResult | None:
        """The unit's own error (it could not be built or its worker died), or None."""
        return next((r for r in self.results if r.is_unit), None)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": self.kind,
            "dist": self.dist,
            "target": self.target,
            "file": self.file,
            "line": self.line,
            "label": self.label,
            "duration": round(self.duration, 6),
            "peak_memory": self.peak_memory,
            "output": self.output,
            "results": [r.to_dict() for r in self.results],
            **({"changes": self.changes} if self.changes else {}),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> UnitReport:
        return cls(
            name=str(data["name"]),
            kind=str(data.get("kind") or "model"),
            dist=str(data.get("dist") or ""),
            target=str(data.get("target") or ""),
            file=data.get("file"),
            line=int(data["line"]) if data.get("line") is not None else None,
            label=str(data.get("label") or ""),
            duration=float(data.get("duration") or 0.0),
            peak_memory=int(data.get("peak_memory") or 0),
            output=str(data.get("output") or ""),
            results=[CheckResult.from_dict(r) for r in data.get("results", [])],
            changes=dict(data.get("changes") or {}),
        )


@dataclass
class RunReport:
    """A whole run: every unit's report plus the settings that produced it."""

    reports: list[UnitReport] = field(default_factory=list)
    seed: int = 0
    torch_version: str = ""
    torchvet_version: str = ""
    duration: float = 0.0
    interrupted: bool = False

    def all_results(self) -> Iterable[tuple[UnitReport, CheckResult]]:
        for report in self.reports:
            for result in report.results:
                yield report, result

    def counts(self) -> Counter[Status]:
        """Every result by status, the units' own errors included (an ``error`` is a unit
        that errored or a check that raised)."""
        total: Counter[Status] = Counter()
        for report in self.reports:
            total.update(report.counts())
        return total

    def check_counts(self) -> Counter[Status]:
        """The checks' results by status, without the units' own results."""
        total: Counter[Status] = Counter()
        for report in self.reports:
            total.update(report.check_counts())
        return total

    def unit_counts(self) -> Counter[Status]:
        """The units by their status (:attr:`UnitReport.status`)."""
        return Counter(report.status for report in self.reports)

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": SCHEMA_VERSION,
            "torchvet_version": self.torchvet_version,
            "torch_version": self.torch_version,
            "seed": self.seed,
            "duration": round(self.duration, 6),
            "interrupted": self.interrupted,
            "counts": {s.value: n for s, n in sorted(self.counts().items(), key=_by_value)},
            "reports": [r.to_dict() for r in self.reports],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RunReport:
        schema = data.get("schema")
        if schema is None:
            raise ValueError("not a torchvet JSON report (it has no 'schema' field)")
        if schema != SCHEMA_VERSION:
            raise ValueError(
                f"unsupported report schema {schema!r} (this torchvet reads schema "
                f"{SCHEMA_VERSION}); regenerate the report with this torchvet version"
            )
        return cls(
            reports=[UnitReport.from_dict(r) for r in data.get("reports", [])],
            seed=int(data.get("seed") or 0),
            torch_version=str(data.get("torch_version") or ""),
            torchvet_version=str(data.get("torchvet_version") or ""),
            duration=float(data.get("duration") or 0.0),
            interrupted=bool(data.get("interrupted")),
        )


# --------------------------------------------------------------------------- sanitising

# What XML 1.0 and UTF-8 cannot carry: lone surrogates, C0 controls but tab/LF/CR,
# U+FFFE/U+FFFF; ANSI escape sequences go whole (colour codes in captured output).
_ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]")
_MARKER_ROOM = 48
_INVALID = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def clean_text(text: str, limit: int | None = None, *, keep: str = "head") -> str:
    """``text`` fit for any report: ANSI escapes and NUL dropped, other invalid characters
    replaced by U+FFFD, and at most ``limit`` bytes of UTF-8 kept (the ``head`` or the
    ``tail``) with a "… N bytes left out" marker saying what went."""
    text = _INVALID.sub(lambda m: "" if m.group() == "\x00" else "\ufffd",
                        _ANSI.sub("", text))
    if limit is None:
        return text
    data = text.encode("utf-8")
    if len(data) <= limit:
        return text
    kept = max(0, limit - _MARKER_ROOM)  # the marker fits in the limit: cleaning is idempotent
    marker = f"[… {len(data) - kept} bytes left out …]"
    if keep == "tail":
        return marker + "\n" + data[len(data) - kept:].decode("utf-8", "ignore")
    return data[:kept].decode("utf-8", "ignore") + " " + marker


def clean_result(result: CheckResult) -> CheckResult:
    """The result with every string cleaned and capped (see :func:`clean_text`)."""
    return CheckResult(
        id=clean_text(str(result.id), ID_LIMIT),
        status=result.status,
        message=clean_text(str(result.message), MESSAGE_LIMIT),
        details=clean_text(str(result.details), DETAILS_LIMIT, keep="tail"),
        file=clean_text(str(result.file), NAME_LIMIT) if result.file else None,
        line=result.line,
        duration=result.duration,
        peak_memory=result.peak_memory,
    )


def clean_unit(report: UnitReport) -> UnitReport:
    """Clean ``report`` in place (its results, names and captured output); returns it."""
    report.name = clean_text(str(report.name), NAME_LIMIT)
    report.kind, report.dist, report.target, report.label = (
        clean_text(str(v), NAME_LIMIT)
        for v in (report.kind, report.dist, report.target, report.label))
    report.file = clean_text(str(report.file), NAME_LIMIT) if report.file else None
    report.output = clean_text(str(report.output), OUTPUT_LIMIT, keep="tail")
    report.results = [clean_result(r) for r in report.results]
    return report


def clean_run(run: RunReport) -> RunReport:
    """Clean every unit of ``run`` in place; returns it. Idempotent, so every place a run
    enters (a worker's messages, a JSON file) or leaves (a writer) may call it."""
    for report in run.reports:
        clean_unit(report)
    run.torch_version = clean_text(str(run.torch_version), NAME_LIMIT)
    run.torchvet_version = clean_text(str(run.torchvet_version), NAME_LIMIT)
    return run


def _by_value(item: tuple[Status, int]) -> str:
    return item[0].value


def merge_runs(runs: Iterable[RunReport]) -> RunReport:
    """Combine shard reports; a unit present in several shards keeps its last report."""
    merged = RunReport()
    by_key: dict[tuple[str, str, str], UnitReport] = {}
    for run in runs:
        merged.seed = run.seed
        merged.torch_version = merged.torch_version or run.torch_version
        merged.torchvet_version = merged.torchvet_version or run.torchvet_version
        merged.duration = max(merged.duration, run.duration)
        merged.interrupted = merged.interrupted or run.interrupted
        for report in run.reports:
            by_key[(report.kind, report.name, report.label)] = report
    merged.reports = sorted(by_key.values(), key=lambda r: (r.kind, r.name, r.label))
    return merged


def exit_code_for(run: RunReport, fail_on: str) -> int:
    """0 when the run is acceptable under ``fail_on``, else 1."""
    if fail_on == "never":
        return 0
    bad = {s for s in Status if s.is_bad}
    if fail_on == "warning":
        bad.add(Status.WARNED)
    return 1 if any(r.status in bad for _, r in run.all_results()) else 0
