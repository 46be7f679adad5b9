"""GitHub Actions reporter: annotations, the job summary and step outputs.

An observer: it only reads a finished :class:`RunReport`. Everything derived from the
results (and so, possibly, from user code) is made safe for where it goes:

- annotations are workflow commands on stdout, written and escaped by
  :mod:`torchvet.github.workflow`, so a message can never end a command early or start
  a second one;
- the Markdown job summary (``$GITHUB_STEP_SUMMARY``) escapes HTML and Markdown, puts
  raw text in ``<pre>`` blocks, and stays under GitHub's 1 MiB cap;
- step outputs (``$GITHUB_OUTPUT``) use ``name=value`` for one-line values and the
  heredoc form ``name<<DELIMITER`` with a random delimiter for multi-line ones.

GitHub shows at most 10 annotations per level for a step: the most severe come first,
the rest are counted in the summary, which lists every problem.
"""

from __future__ import annotations

import html
import os
import re
import secrets
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO
from urllib.parse import quote

from ..errors import ExitCode
from ..regression import changes as model_changes
from ..reporters.evidence import mermaid_charts
from ..reporters.terminal import COLUMNS, run_phrase
from ..results import CheckResult, RunReport, Status, UnitReport, exit_code_for
from .markdown import fold, html_inline, html_pre, md, safe_name, strip_control
from .workflow import command

ANNOTATION_CAP = 10  # per level and step (GitHub's limit)
SUMMARY_LIMIT = 1024 * 1024  # bytes per step summary (GitHub's limit)
SUMMARY_MARGIN = 8 * 1024  # kept free below the limit
MESSAGE_LIMIT = 4000  # characters of an annotation message
ANNOTATION_DETAIL_LINES = 12  # last lines of the details appended to an annotation
DETAILS_LIMIT = 32 * 1024  # characters of one failure's details in the summary
OUTPUT_TAIL_LINES = 40  # captured output lines of a failing unit in the summary
QUIET_IDS_NAMED = 2  # check ids a collapsed skipped line names (else area.* or a count)
OMITTED_NAMED = 20  # problems left out of the annotations named in the summary's note

_LEVELS = {
    Status.ERROR: "error",
    Status.FAILED: "error",
    Status.XPASSED: "error",
    Status.WARNED: "warning",
}
ICONS = {
    Status.PASSED: "✅",
    Status.FAILED: "❌",
    Status.ERROR: "💥",
    Status.XPASSED: "❗",
    Status.WARNED: "⚠️",
    Status.SKIPPED: "⏭️",
    Status.XFAILED: "☑️",
    Status.CANCELLED: "🚫",
    Status.NOT_RUN: "⛔",
}
# --------------------------------------------------------------------------- annotations


@dataclass(frozen=True)
class Annotation:
    level: str  # error | warning
    title: str
    message: str
    file: str | None = None
    line: int | None = None

    def render(self) -> str:
        return command(self.level, self.message, file=self.file,
                       line=self.line if self.file else None, title=self.title)


def _location(report: UnitReport, result: CheckResult) -> tuple[str | None, int | None]:
    """Repo-relative file and line of the culprit, else of the unit; absolute paths
    (outside the workspace) cannot be annotated on a diff and are dropped."""
    for file, line in ((result.file, result.line), (report.file, report.line)):
        if file and not file.startswith(("/", "\\")) and ".." not in Path(file).parts:
            return file.replace("\\", "/"), int(line) if line else 1
    return None, None


def _message(result: CheckResult) -> str:
    """The one-line verdict, then the last lines of the details (for an exception: the
    culprit frame and the full exception text)."""
    text = strip_control(result.message or result.status.value).strip()
    details = strip_control(result.details or "").strip()
    if details and details != text:
        text += "\n\n" + "\n".join(details.split("\n")[-ANNOTATION_DETAIL_LINES:])
    if len(text) > MESSAGE_LIMIT:
        text = text[: MESSAGE_LIMIT - 1] + "…"
    return text


def problems(run: RunReport) -> list[tuple[UnitReport, CheckResult]]:
    """Every result worth an annotation, grouped by unit (units in the order of their
    worst problem), failures before errors before warnings within a unit."""
    by_unit: dict[int, list[tuple[UnitReport, CheckResult]]] = {}
    for index, report in enumerate(run.reports):
        found = [(report, r) for r in report.results if r.status in _LEVELS]
        if found:
            by_unit[index] = sorted(found, key=lambda mr: mr[1].status.problem_rank)
    order = sorted(by_unit, key=lambda i: (by_unit[i][0][1].status.problem_rank, i))
    return [pair for index in order for pair in by_unit[index]]


def _cause(result: CheckResult) -> str:
    return fold(result.message or result.status.value)


def _what(report: UnitReport, result: CheckResult) -> str:
    """``unit · check``, or just ``unit`` for the unit's own error."""
    return report.display_name if result.is_unit else f"{report.display_name} · {result.id}"


@dataclass
class _Spot:
    """The problems one annotation stands for: one line (or, without a file, one
    cause), deduplicated by (unit, check)."""

    level: str
    file: str | None
    line: int | None
    found: list[tuple[UnitReport, CheckResult]]

    def annotation(self) -> Annotation:
        first = self.found[0][1]
        worst = min((r.status for _, r in self.found), key=lambda s: s.problem_rank)
        status = "" if worst in (Status.FAILED, Status.WARNED) else f" ({worst.value})"
        by_unit: dict[str, list[CheckResult]] = {}
        for report, result in self.found:
            by_unit.setdefault(report.display_name, []).append(result)
        title = "; ".join(
            name + ("" if all(r.is_unit for r in results) else
                    " · " + ", ".join(r.id for r in results if not r.is_unit))
            for name, results in by_unit.items())
        causes = list(dict.fromkeys(_cause(r) for _, r in self.found))
        if len(causes) == 1:
            message = _message(first)
        else:  # several problems on one line: one annotation lists them
            message = "\n".join(f"{_what(m, r)}: {strip_control(r.message).strip()}"
                                 for m, r in self.found)
            message = message[: MESSAGE_LIMIT - 1] + "…" if len(message) > MESSAGE_LIMIT \
                else message
        return Annotation(level=self.level, title=f"torchvet: {title}{status}",
                          message=message, file=self.file, line=self.line)


def _spots(run: RunReport) -> list[_Spot]:
    """The problems by annotation: those on one line share it, those without a file
    share it when their cause is the same; ranked so that every unit's first problem
    (failures first) comes before any unit's second."""
    spots: dict[tuple[object, ...], _Spot] = {}
    for report, result in problems(run):
        level = _LEVELS[result.status]
        file, line = _location(report, result)
        key: tuple[object, ...] = (level, file, line) if file else (level, _cause(result))
        spot = spots.setdefault(key, _Spot(level, file, line, []))
        spot.found.append((report, result))
    rounds: Counter[str] = Counter()
    ranked = []
    for order, spot in enumerate(spots.values()):
        unit = spot.found[0][0].display_name
        ranked.append(((rounds[unit], spot.found[0][1].status.problem_rank, order), spot))
        rounds[unit] += 1
    return [spot for _, spot in sorted(ranked, key=lambda item: item[0])]


def build_annotations(run: RunReport) -> tuple[list[Annotation], dict[str, list[str]]]:
    """The annotations to emit (at most :data:`ANNOTATION_CAP` per level: one per line,
    each unit's first problem before any unit's second) and, per level, the problems
    left out (``unit · check``)."""
    shown: list[Annotation] = []
    per_level: Counter[str] = Counter()
    omitted: dict[str, list[str]] = {}
    for spot in _spots(run):
        if per_level[spot.level] >= ANNOTATION_CAP:
            omitted.setdefault(spot.level, []).extend(_what(m, r) for m, r in spot.found)
            continue
        per_level[spot.level] += 1
        shown.append(spot.annotation())
    return shown, omitted


# --------------------------------------------------------------------------- outcome


def conclusion(run: RunReport) -> str:
    """The worst outcome, whatever ``fail-on`` says: ``failure`` (a check failed, errored
    or passed unexpectedly), ``warning``, ``success``, or ``cancelled`` (interrupted)."""
    if run.interrupted:
        return "cancelled"
    counts = run.counts()
    if any(status.is_bad for status in counts):
        return "failure"
    if counts.get(Status.WARNED):
        return "warning"
    return "success"


def counts_for_outputs(run: RunReport) -> dict[str, int]:
    """The step's counts: ``errors`` are units that errored (could not be built, worker
    died) plus checks that raised; ``not-run`` the checks those units never reached."""
    counts = run.counts()
    return {
        "passed": counts[Status.PASSED],
        "failed": counts[Status.FAILED] + counts[Status.XPASSED],
        "errors": counts[Status.ERROR],
        "skipped": counts[Status.SKIPPED] + counts[Status.XFAILED] + counts[Status.CANCELLED],
        "not-run": counts[Status.NOT_RUN],
        "warnings": counts[Status.WARNED],
    }


def workspace_path(path: str | None, env: Mapping[str, str]) -> str:
    """``path`` relative to ``$GITHUB_WORKSPACE`` when it lies inside it (what later
    steps, which run in the workspace, can open), else as given."""
    if not path:
        return ""
    workspace = env.get("GITHUB_WORKSPACE")
    if workspace:
        try:
            return Path(path).resolve().relative_to(Path(workspace).resolve()).as_posix()
        except ValueError:
            pass
    return path


def outputs(run: RunReport, junit_path: str | None,
            env: Mapping[str, str] | None = None) -> dict[str, str]:
    env = os.environ if env is None else env
    values = {name: str(n) for name, n in counts_for_outputs(run).items()}
    values["conclusion"] = conclusion(run)
    values["junit-file"] = workspace_path(junit_path, env)
    values["failures"] = "\n".join(  # a unit's own error reads unit:unit
        f"{safe_name(m.display_name)}:{safe_name(r.id)}"
        for m, r in problems(run) if r.status.is_bad
    )
    return values


def format_outputs(values: Mapping[str, str]) -> str:
    """``$GITHUB_OUTPUT`` text: ``name=value`` lines, or for a value holding a line
    break ``name<<DELIM`` / value / ``DELIM`` with a random delimiter absent from it."""
    chunks = []
    for name, value in values.items():
        if "=" in name or "<<" in name or "\n" in name or "\r" in name:
            raise ValueError(f"invalid output name {name!r}")
        if "\n" in value or "\r" in value:
            delimiter = f"ghadelimiter_{secrets.token_hex(16)}"
            while delimiter in value:  # pragma: no cover - 128 random bits
                delimiter = f"ghadelimiter_{secrets.token_hex(16)}"
            chunks.append(f"{name}<<{delimiter}\n{value}\n{delimiter}\n")
        else:
            chunks.append(f"{name}={value}\n")
    return "".join(chunks)


def write_outputs(path: str | os.PathLike[str], values: Mapping[str, str]) -> None:
    with open(path, "a", encoding="utf-8", newline="\n") as handle:
        handle.write(format_outputs(values))


def failure_outputs() -> dict[str, str]:
    """The outputs of a step where torchvet could not run: no counts, ``conclusion=error``."""
    return {**outputs(RunReport(), None, {}), "conclusion": "error"}


# --------------------------------------------------------------------------- summary


def _source_link(file: str, line: int | None, env: Mapping[str, str]) -> str:
    """``<code>file:line</code>``, linked to the commit on GitHub when the run says where."""
    label = f"<code>{html_inline(file)}:{line or 1}</code>"
    server, repo, sha = (env.get("GITHUB_SERVER_URL"), env.get("GITHUB_REPOSITORY"),
                         env.get("GITHUB_SHA"))
    if not (server and repo and sha) or file.startswith("/"):
        return label
    url = (f"{server.rstrip('/')}/{quote(repo)}/blob/{quote(sha)}/"
           f"{quote(file)}#L{line or 1}")
    return f'<a href="{html.escape(url, quote=True)}">{label}</a>'


def _tail(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    return f"[… {len(text) - limit} earlier characters left out …]\n" + text[-limit:]


def _header(run: RunReport, fail_on: str, junit_path: str | None,
            env: Mapping[str, str]) -> str:
    outcome = conclusion(run)
    icon = {"success": "✅", "warning": "⚠️", "failure": "❌", "cancelled": "🚫"}[outcome]
    models = sum(1 for r in run.reports if r.kind == "model")
    datasets = len(run.reports) - models
    meta = [
        f"{models} model(s), {datasets} dataset(s)",
        f"torch {md(run.torch_version or '?')}",
        f"torchvet {md(run.torchvet_version or '?')}",
        f"seed {run.seed}",
        f"{run.duration:.1f} s",
        f"fail-on {md(fail_on)}",
    ]
    if junit_path:
        meta.append(f"JUnit {md(workspace_path(junit_path, env))}")
    if run.interrupted:
        verdict = "the run was interrupted"
    else:
        passes = exit_code_for(run, fail_on) == ExitCode.OK
        verdict = "this step " + ("passes" if passes else "fails")
    return (
        f"## {icon} torchvet: {md(run_phrase(run))}\n\n"
        f"{' · '.join(meta)} · {verdict}\n\n"
    )


def _table(reports: list[UnitReport]) -> tuple[str, list[str]]:
    head = ("| Unit | Kind | Status | " + " | ".join(ICONS[s] + " " + s.label
                                                   for s in COLUMNS)
            + " | Time |\n|---|---|---|" + "--:|" * len(COLUMNS) + "--:|\n")
    rows = []
    for report in reports:
        counts = report.counts()
        status = report.status
        cells = " | ".join(str(counts.get(s, 0)) for s in COLUMNS)
        rows.append(f"| {md(report.display_name)} | {md(report.kind)} | "
                    f"{ICONS[status]} {status.value} | {cells} | {report.duration:.2f} s |\n")
    return head, rows


def _problem_groups(run: RunReport) -> list[tuple[UnitReport, list[CheckResult]]]:
    """:func:`problems` with the checks of one unit that share a status and a message
    collapsed into one entry (in the order of their first)."""
    groups: dict[tuple[str, Status, str], tuple[UnitReport, list[CheckResult]]] = {}
    for report, result in problems(run):
        key = (report.display_name, result.status, _cause(result))
        groups.setdefault(key, (report, []))[1].append(result)
    return list(groups.values())


def _problem_block(report: UnitReport, results: list[CheckResult],
                   env: Mapping[str, str]) -> str:
    result = results[0]
    ids = "" if result.is_unit else " · " + ", ".join(
        f"<code>{html_inline(r.id)}</code>" for r in results)
    what = " (the unit)" if result.is_unit else ""
    summary = (f"{ICONS[result.status]} <b>{html_inline(report.display_name)}</b>{what}"
               f"{ids} ({result.status.value}): {html_inline(result.message or '')}")
    parts = [f"<details>\n<summary>{summary}</summary>\n\n"]
    spots = list(dict.fromkeys(_location(report, r) for r in results))
    links = [_source_link(file, line, env) for file, line in spots if file]
    if links:
        parts.append(f"<p>at {', '.join(links)}</p>\n\n")
    parts.append(_charts(result))
    details = (result.details or "").strip()
    if details and details != (result.message or "").strip():
        parts.append(html_pre(_tail(details, DETAILS_LIMIT)) + "\n\n")
    parts.append("</details>\n\n")
    return "".join(parts)


_QUIET = (Status.SKIPPED, Status.XFAILED, Status.NOT_RUN, Status.CANCELLED)


def _generic(message: str, name: str) -> str:
    """``message`` with the unit's own name made ``<unit>``, so that units skipping for
    the same reason ("no snapshot .torchvet/snapshots/<unit>.json") share one line."""
    if not name:
        return message
    return re.sub(rf"(?<![\w-]){re.escape(name)}(?![\w-])", "<unit>", message)


def _quiet_items(run: RunReport) -> tuple[int, str]:
    """The skipped, expected, not-run and cancelled checks as list items: those with
    one status and message collapsed across checks and units ("regression.* skipped on
    4 units: no snapshot ..."); returns how many results they stand for."""
    groups: dict[tuple[Status, str], list[tuple[UnitReport, CheckResult]]] = {}
    for report, result in run.all_results():
        if result.status in _QUIET:
            key = (result.status, _generic(_cause(result), report.name))
            groups.setdefault(key, []).append((report, result))
    items = []
    for (status, generic), found in sorted(groups.items(),
                                           key=lambda g: _QUIET.index(g[0][0])):
        units = list(dict.fromkeys(m.display_name for m, _ in found))
        checks = list(dict.fromkeys(r.id for _, r in found))
        areas = {c.split(".", 1)[0] for c in checks}
        if len(checks) <= QUIET_IDS_NAMED:
            what = ", ".join(f"<code>{html_inline(c)}</code>" for c in checks)
        elif len(areas) == 1:
            what = f"<code>{html_inline(areas.pop())}.*</code> ({len(checks)} checks)"
        else:
            what = f"{len(checks)} checks"
        where = (f"<b>{html_inline(units[0])}</b>" if len(units) == 1 else
                 f"{len(units)} units ({html_inline(', '.join(units))})")
        message = found[0][1].message if len(units) == 1 else generic
        if status is Status.NOT_RUN:
            message = message.removeprefix("not run: ")
        items.append(f"<li>{ICONS[status]} {what} {status.label} on {where}: "
                     f"{html_inline(message)}</li>\n")
    return sum(len(f) for f in groups.values()), "".join(items)


def _charts(result: CheckResult) -> str:
    """The result's loss curves as Mermaid charts (GitHub renders them), or ''."""
    charts = mermaid_charts(result.data, result.id)
    return f"{charts}\n" if charts else ""


def _output_block(report: UnitReport) -> str:
    lines = strip_control(report.output).rstrip().splitlines()
    note = ""
    if len(lines) > OUTPUT_TAIL_LINES:
        note = f"[… {len(lines) - OUTPUT_TAIL_LINES} earlier lines left out …]\n"
        lines = lines[-OUTPUT_TAIL_LINES:]
    text = _tail(note + "\n".join(lines), DETAILS_LIMIT)
    return (f"<details>\n<summary>Output of <b>{html_inline(report.display_name)}</b>"
            f"</summary>\n\n{html_pre(text)}\n\n</details>\n\n")


def render_summary(run: RunReport, *, fail_on: str = "failure",
                   junit_path: str | None = None,
                   omitted: Mapping[str, list[str]] | None = None,
                   env: Mapping[str, str] | None = None,
                   limit: int = SUMMARY_LIMIT - SUMMARY_MARGIN) -> str:
    """The Markdown job summary, at most ``limit`` bytes (UTF-8). Parts are added in
    order of importance; a part that does not fit is left out (the smaller ones after it
    still go in) and counted in a closing note."""
    env = os.environ if env is None else env
    notes: list[str] = []
    for level, left in sorted((omitted or {}).items()):
        if left:
            named = ", ".join(md(what) for what in left[:OMITTED_NAMED]) + (
                f" and {len(left) - OMITTED_NAMED} more" if len(left) > OMITTED_NAMED else "")
            notes.append(f"{len(left)} more {level}(s) not annotated (GitHub shows at most "
                         f"{ANNOTATION_CAP} per level in a step): {named}; every problem is "
                         "listed below.")
    head = _header(run, fail_on, junit_path, env) + "".join(f"> {n}\n\n" for n in notes)
    table_head, rows = _table(run.reports)
    bad = _problem_groups(run)
    bad_units = {m.display_name for m, _ in bad}
    outputs_ = [r for r in run.reports if r.display_name in bad_units and r.output.strip()]
    quiet, items = _quiet_items(run)

    pieces: list[tuple[str, str]] = [("table", table_head)]
    pieces += [("row", row) for row in rows]
    changes = render_model_changes(run.reports)
    if changes:
        pieces.append(("changes", changes))
    if bad:
        pieces.append(("heading", "\n### Problems\n\n"))
        pieces += [("problem", _problem_block(m, rs, env)) for m, rs in bad]
    if outputs_:
        pieces.append(("heading", "### Captured output of failing units\n\n"))
        pieces += [("output", _output_block(r)) for r in outputs_]
    if quiet:
        pieces.append(("skipped", f"<details>\n<summary>{quiet} skipped, expected or not "
                                  f"run check(s)</summary>\n\n<ul>\n{items}</ul>\n\n"
                                  "</details>\n\n"))

    reserve = 400  # room for the truncation note
    text = head
    size = len(text.encode())
    left_out: Counter[str] = Counter()
    headless = False  # a section whose heading did not fit is left out whole
    for kind, piece in pieces:  # a piece too big is left out, the smaller ones after it stay
        piece_size = len(piece.encode())
        if kind == "heading":
            headless = size + piece_size + reserve > limit
        if headless or size + piece_size + reserve > limit:
            left_out[kind] += 1
            continue
        text += piece
        size += piece_size
    if left_out:
        what = ", ".join(f"{n} {label}" for label, n in (
            ("unit row(s)", left_out["row"]), ("problem detail(s)", left_out["problem"]),
            ("captured output(s)", left_out["output"]),
            ("skipped list", left_out["skipped"])) if n)
        text += (f"\n\n> ⚠️ Summary truncated to stay under GitHub's 1 MiB limit: "
                 f"{what or 'some parts'} left out. The JUnit and JSON reports hold every "
                 "result.\n")
    return text


# --------------------------------------------------------------------------- model changes


def render_model_changes(reports: list[UnitReport]) -> str:
    """The "Model changes" table: per unit compared with a baseline, parameters, forward
    FLOPs and activation memory before → after, whether its outputs changed
    (regression.outputs) and whether old checkpoints still load; '' when none was
    compared."""
    rows = model_changes.compared(reports)
    if not rows:
        return ""
    sources = model_changes.baselines(reports)
    against = f" against {', '.join(md(s) for s in sources)}" if sources else ""
    lines = [f"\n### Model changes{against}\n\n",
             "| " + " | ".join(model_changes.COLUMNS) + " |\n|---|--:|--:|--:|:-:|:-:|\n"]
    lines += ["| " + " | ".join(md(cell) for cell in model_changes.cells(r)) + " |\n"
              for r in rows]
    return "".join(lines) + "\n"


# --------------------------------------------------------------------------- publish


def publish(run: RunReport, *, fail_on: str, junit_path: str | None, stream: TextIO,
            annotate: bool = True, summarize: bool = True,
            env: Mapping[str, str] | None = None) -> None:
    """Emit the annotations on ``stream``, append the job summary to
    ``$GITHUB_STEP_SUMMARY`` and the step outputs to ``$GITHUB_OUTPUT`` (each skipped
    when its variable is unset). Call it outside any stop-commands block."""
    env = os.environ if env is None else env
    shown, omitted = build_annotations(run)
    if annotate:
        for annotation in shown:
            stream.write(annotation.render() + "\n")
        stream.flush()
    else:
        omitted = {}
    summary_path = env.get("GITHUB_STEP_SUMMARY")
    if summarize and summary_path:
        try:
            existing = os.path.getsize(summary_path)
        except OSError:
            existing = 0
        limit = max(SUMMARY_LIMIT - SUMMARY_MARGIN - existing, 4096)
        text = render_summary(run, fail_on=fail_on, junit_path=junit_path, omitted=omitted,
                              env=env, limit=limit)
        with open(summary_path, "a", encoding="utf-8", newline="\n") as handle:
            handle.write(text)
    output_path = env.get("GITHUB_OUTPUT")
    if output_path:
        write_outputs(output_path, outputs(run, junit_path, env))


def publish_failure(title: str, message: str, *, summarize: bool = True,
                    env: Mapping[str, str] | None = None) -> None:
    """When torchvet could not run: a job summary saying why (when ``summarize``) and
    :func:`failure_outputs`, each skipped when its variable is unset."""
    env = os.environ if env is None else env
    summary_path = env.get("GITHUB_STEP_SUMMARY")
    if summarize and summary_path:
        with open(summary_path, "a", encoding="utf-8", newline="\n") as handle:
            handle.write(f"## 💥 torchvet could not run: {md(title)}\n\n{html_pre(message)}\n")
    output_path = env.get("GITHUB_OUTPUT")
    if output_path:
        write_outputs(output_path, failure_outputs())
