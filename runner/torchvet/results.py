"""Result records: what every check decides, and how it round-trips through JSON.

Nothing here imports torch: the parent process, the reporters and ``torchvet merge``
only ever read results.
"""

from __future__ import annotations

import enum
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

SCHEMA_VERSION = 1


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

    @classmethod
    def from_str(cls, value: str) -> Status:
        try:
            return cls(value)
        except ValueError:
            raise ValueError(
                f"unknown status {value!r}; expected one of {', '.join(s.value for s in cls)}"
            ) from None

    @property
    def is_bad(self) -> bool:
        """Counts against the run under ``--fail-on failure``."""
        return self in (Status.FAILED, Status.ERROR, Status.XPASSED)

    @property
    def severity(self) -> int:
        """Ordering for "most important first" (higher is worse)."""
        return _SEVERITY[self]


_SEVERITY = {
    Status.ERROR: 7,
    Status.FAILED: 6,
    Status.XPASSED: 5,
    Status.WARNED: 4,
    Status.CANCELLED: 3,
    Status.XFAILED: 2,
    Status.SKIPPED: 1,
    Status.PASSED: 0,
}


@dataclass
class CheckResult:
    """The verdict of one check: a ``CallInfo``-style record of its outcome.

    ``message`` is the one-line verdict (it names the culprit and the fix); ``details``
    holds everything else (tracebacks, tables). ``file``/``line`` point at the culprit,
    relative to the report root where possible.
    """

    id: str
    status: Status
    message: str = ""
    details: str = ""
    file: str | None = None
    line: int | None = None
    duration: float = 0.0

    @property
    def area(self) -> str:
        return self.id.split(".", 1)[0]

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "status": self.status.value,
            "message": self.message,
            "details": self.details,
            "file": self.file,
            "line": self.line,
            "duration": round(self.duration, 6),
        }

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
        )


@dataclass
class UnitReport:
    """All results for one unit (a model or a dataset factory)."""

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
        decisive = statuses - {Status.SKIPPED, Status.XFAILED}
        if decisive:
            return max(decisive, key=lambda s: s.severity)
        if statuses:
            return max(statuses, key=lambda s: s.severity)
        return Status.PASSED

    def counts(self) -> Counter[Status]:
        return Counter(r.status for r in self.results)

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
        total: Counter[Status] = Counter()
        for report in self.reports:
            total.update(report.counts())
        return total

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
