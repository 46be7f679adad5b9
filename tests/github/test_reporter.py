"""The GitHub reporter: annotations (the cap, the culprit line, the message intact), the
job summary and the step outputs, checked against an independent model of how the Actions
runner reads them (helpers.workflow). The escaping itself is tested in
tests/github/test_workflow.py and tests/github/test_markdown.py."""

from __future__ import annotations

import io
import re
from dataclasses import replace
from pathlib import Path

import pytest

from tests.helpers import broken_run, run_cli
from tests.helpers.action import copy_fixture, culprit_line
from tests.helpers.mixed import assert_mixed_case
from tests.helpers.workflow import NASTY, read_outputs, replay_log
from torchvet.github import reporter as gh
from torchvet.results import CheckResult, RunReport, Status, UnitReport

# --------------------------------------------------------------------------- helpers


def result(check: str, status: Status, message: str = "", details: str = "",
           file: str | None = None, line: int | None = None) -> CheckResult:
    return CheckResult(id=check, status=status, message=message, details=details, file=file,
                       line=line, duration=0.01)


def run_of(*reports: UnitReport, **kwargs: object) -> RunReport:
    return RunReport(reports=list(reports), torch_version="2.13.0+cpu",
                     torchvet_version="0.1.0", duration=1.5, **kwargs)  # type: ignore[arg-type]


def unit(name: str, *results: CheckResult, **kwargs: object) -> UnitReport:
    return UnitReport(name=name, results=list(results), **kwargs)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- annotations


@pytest.mark.parametrize("text", NASTY)
def test_any_unit_name_and_message_reach_the_annotation_intact(text: str) -> None:
    run = run_of(unit(f"u {text}", result("forward.runs", Status.FAILED, f"m {text} end",
                                          file="src/m.py", line=2)))
    [line] = [a.render() for a in gh.build_annotations(run)[0]]
    [(name, props, data)] = replay_log(line + "\n")
    assert (name, data) == ("error", f"m {text} end")
    assert props["title"] == f"torchvet: u {text} · forward.runs"


# --------------------------------------------------------------------------- annotations


def test_annotation_points_at_the_culprit_with_a_titled_escaped_message() -> None:
    run = run_of(unit("dead_layer", result(
        "training.gradients", Status.FAILED, "unused_proj.weight got no gradient, fix: x",
        details="unused_proj.weight: grad None", file="src/pkg/models.py", line=14)))
    shown, omitted = gh.build_annotations(run)
    assert not omitted
    [line] = [a.render() for a in shown]
    assert line.startswith(
        "::error file=src/pkg/models.py,line=14,title=torchvet%3A dead_layer · "
        "training.gradients::unused_proj.weight got no gradient, fix: x")
    [(_name, props, data)] = replay_log(line)
    assert props["title"] == "torchvet: dead_layer · training.gradients"
    assert data == ("unused_proj.weight got no gradient, fix: x\n\n"
                    "unused_proj.weight: grad None")


def test_annotation_falls_back_to_the_unit_and_drops_paths_outside_the_workspace() -> None:
    run = run_of(
        unit("a", result("forward.runs", Status.ERROR, "boom", file="/usr/lib/x.py", line=3),
             file="src/a.py", line=7),
        unit("b", result("forward.runs", Status.ERROR, "boom", file="/usr/lib/x.py", line=3)),
        unit("c", result("forward.runs", Status.FAILED, "bust", file="../outside.py", line=3)),
    )
    shown, _ = gh.build_annotations(run)
    # the failure first, then one per unit
    assert [(a.file, a.line) for a in shown] == [(None, None), ("src/a.py", 7), (None, None)]
    assert shown[2].render().startswith("::error title=torchvet%3A b · forward.runs (error)::")


def test_problems_without_a_file_share_one_annotation_per_cause() -> None:
    run = run_of(*(unit(name, result("forward.runs", Status.ERROR, "torch is broken"))
                   for name in ("a", "b", "c")),
                 unit("d", result("forward.runs", Status.ERROR, "another cause")))
    shown, omitted = gh.build_annotations(run)
    assert [(a.title, a.message) for a in shown] == [
        ("torchvet: a · forward.runs; b · forward.runs; c · forward.runs (error)",
         "torch is broken"),
        ("torchvet: d · forward.runs (error)", "another cause")]
    assert not omitted


def test_exception_text_reaches_the_annotation_intact() -> None:
    message = ("hostile: 100% broken, really\nsecond: a, b, c\r\n::error::inner\n"
               "%0A literal")
    details = ('Traceback (most recent call last):\n  File "src/m.py", line 9\n'
               f"ValueError: {message}")
    run = run_of(unit("m", result("forward.runs", Status.FAILED, "raised ValueError",
                                  details=details, file="src/m.py", line=9)))
    [line] = [a.render() for a in gh.build_annotations(run)[0]]
    assert line.count("\n") == 0 and "\r" not in line
    [(name, props, data)] = replay_log(line + "\n")
    assert (name, props["file"], props["line"]) == ("error", "src/m.py", "9")
    assert data.endswith(f"ValueError: {message}")


def test_at_most_ten_annotations_per_level_failures_first() -> None:
    failed = [result(f"training.f{i}", Status.FAILED, f"failed {i}") for i in range(6)]
    errors = [result(f"forward.e{i}", Status.ERROR, f"error {i}") for i in range(7)]
    xpassed = [result("state.xp", Status.XPASSED, "unexpectedly passed")]
    warned = [result(f"data.w{i}", Status.WARNED, f"warned {i}") for i in range(12)]
    skipped = [result("export.s", Status.SKIPPED, "skipped")]
    run = run_of(unit("m", *failed, *warned, *skipped, *errors, *xpassed))
    shown, omitted = gh.build_annotations(run)
    levels = [a.level for a in shown]
    assert levels.count("error") == 10 and levels.count("warning") == 10
    assert omitted == {"error": [f"m · forward.e{i}" for i in range(3, 7)],
                       "warning": ["m · data.w10", "m · data.w11"]}
    # the failures (the model is wrong), the xpassed, then the errors (stable within one)
    assert [a.message for a in shown if a.level == "error"] == [
        *(f"failed {i}" for i in range(6)), "unexpectedly passed", "error 0", "error 1",
        "error 2"]
    assert [a.message for a in shown if a.level == "warning"] == [
        f"warned {i}" for i in range(10)]

    stream = io.StringIO()
    gh.publish(run, fail_on="failure", junit_path=None, stream=stream, env={})
    assert len(replay_log(stream.getvalue())) == 20
    summary = gh.render_summary(run, omitted=omitted, env={})
    assert ("4 more error(s) not annotated (GitHub shows at most 10 per level in a step): "
            "m · forward.e3, m · forward.e4, m · forward.e5, m · forward.e6; every problem "
            "is listed below.") in summary
    assert "2 more warning(s) not annotated" in summary
    # every problem is still listed in the summary
    assert summary.count("<details>\n<summary>") == 6 + 7 + 1 + 12 + 1  # + skipped list


# --------------------------------------------------------------------------- summary


def test_summary_has_totals_a_unit_table_and_escaped_details() -> None:
    evil = "<img src=x onerror=alert(1)> | **x** @octocat"
    run = run_of(
        unit("good", result("forward.runs", Status.PASSED), kind="model"),
        unit("bad|name*", result(
            "training.update", Status.FAILED, f"did not change: {evil}",
            details="line 1\n</pre><script>x</script>\n\n## not a heading",
            file="src/m.py", line=4), output="print from user\n::error::fake"),
        unit("set", result("data.length", Status.SKIPPED, "empty"), kind="dataset"),
    )
    env = {"GITHUB_SERVER_URL": "https://github.com", "GITHUB_REPOSITORY": "o/r",
           "GITHUB_SHA": "abc123", "GITHUB_WORKSPACE": "/ws"}
    text = gh.render_summary(run, fail_on="failure", junit_path="/ws/out/junit.xml", env=env)
    assert text.startswith("## ❌ torchvet: 3 units: 1 failed, 1 passed, 1 skipped · checks: "
                           "1 failed, 1 passed, 1 skipped")
    assert "JUnit out/junit.xml" in text and "this step fails" in text
    assert "<script>" not in text and "<img" not in text and "@octocat" not in text
    assert text.count("<pre>") == text.count("</pre>") == 2  # details + captured output
    table = [ln for ln in text.splitlines() if ln.startswith("| ")]
    assert len(table) == 4  # head + 3 units
    for row in table:
        # escaped pipes do not split cells: 10 columns -> 11 pipes in every row
        assert row.count("|") == 11, row
    assert "bad&#124;name\\*" in table[2] and "❌ failed" in table[2]
    assert ('<a href="https://github.com/o/r/blob/abc123/src/m.py#L4">'
            "<code>src/m.py:4</code></a>") in text
    assert "Captured output of failing units" in text and "::error::fake" in text
    assert "1 skipped, expected or not run check(s)" in text


def test_summary_is_truncated_under_the_limit_with_a_note() -> None:
    huge = "x" * 40_000
    run = run_of(*(unit(f"m{i}", *(result(f"forward.c{j}", Status.FAILED, f"bad {i}.{j}",
                                          details=huge + f"\nend {i}.{j}") for j in range(5)))
                   for i in range(12)))  # 60 failures x ~32 KiB of details
    text = gh.render_summary(run, env={})
    size = len(text.encode())
    assert size < gh.SUMMARY_LIMIT
    assert size > gh.SUMMARY_LIMIT // 2  # it filled the room, not just the header
    note = re.search(r"Summary truncated .*: (\d+) problem detail\(s\) left out", text)
    assert note, text[-500:]
    shown = text.count("<details>\n<summary>❌")
    assert shown + int(note.group(1)) == 60
    assert "earlier characters left out" in text  # each detail is cut to its tail
    small = gh.render_summary(run, env={}, limit=20_000)
    assert len(small.encode()) <= 20_000 and "Summary truncated" in small
    assert "| m11 |" in small  # the header and the table go first


def test_one_huge_problem_leaves_out_only_itself() -> None:
    """A 10 MB message once emptied the problem list: now only that problem goes."""
    run = run_of(unit("huge", result("forward.runs", Status.ERROR, "m" * 10_000_000)),
                 unit("small", result("training.loss", Status.FAILED, "loss is NaN")),
                 unit("other", result("state.roundtrip", Status.FAILED, "keys differ")))
    text = gh.render_summary(run, env={}, limit=200_000)
    assert "loss is NaN" in text and "keys differ" in text
    assert "mmmm" not in text and "1 problem detail(s) left out" in text


def test_publish_keeps_the_step_summary_file_under_1_mib(tmp_path: Path) -> None:
    summary = tmp_path / "summary.md"
    summary.write_text("e" * 1_000_000, encoding="utf-8")  # an earlier report in this step
    run = run_of(*(unit(f"m{i}", result("forward.c", Status.FAILED, "bad",
                                        details="d" * 30_000)) for i in range(10)))
    gh.publish(run, fail_on="failure", junit_path=None, stream=io.StringIO(),
               env={"GITHUB_STEP_SUMMARY": str(summary)})
    assert summary.stat().st_size < gh.SUMMARY_LIMIT
    assert "Summary truncated" in summary.read_text(encoding="utf-8")


# --------------------------------------------------------------------------- outputs


def test_outputs_use_a_heredoc_only_for_multiline_values() -> None:
    text = gh.format_outputs({"passed": "3", "conclusion": "success",
                              "failures": "a:forward.runs\nb:training.update", "empty": ""})
    lines = text.splitlines()
    assert lines[:2] == ["passed=3", "conclusion=success"]
    assert re.fullmatch(r"failures<<ghadelimiter_[0-9a-f]{32}", lines[2])
    delimiter = lines[2].split("<<")[1]
    assert lines[3:6] == ["a:forward.runs", "b:training.update", delimiter]
    assert lines[6] == "empty="
    assert read_outputs(text) == {"passed": "3", "conclusion": "success",
                                  "failures": "a:forward.runs\nb:training.update",
                                  "empty": ""}
    assert read_outputs(gh.format_outputs({"x": "cr\ronly"}))["x"] == "cr\ronly"
    with pytest.raises(ValueError):
        gh.format_outputs({"a=b": "1"})


def test_outputs_count_results_and_name_the_failures() -> None:
    run = run_of(unit("m", result("a.one", Status.PASSED), result("a.two", Status.FAILED),
                      result("a.three", Status.XPASSED), result("a.four", Status.ERROR),
                      result("a.five", Status.WARNED), result("a.six", Status.SKIPPED),
                      result("a.seven", Status.XFAILED)),
                 unit("evil`$(x)`", result("b.one", Status.FAILED)))
    values = gh.outputs(run, "/ws/reports/junit.xml", env={"GITHUB_WORKSPACE": "/ws"})
    assert values == {
        "passed": "1", "failed": "3", "errors": "1", "skipped": "2", "not-run": "0",
        "warnings": "1", "conclusion": "failure", "junit-file": "reports/junit.xml",
        "failures": "m:a.two\nm:a.three\nm:a.four\nevil???x??:b.one",
    }
    assert gh.outputs(run, "/elsewhere/j.xml", env={"GITHUB_WORKSPACE": "/ws"})[
        "junit-file"] == "/elsewhere/j.xml"


@pytest.mark.parametrize(("statuses", "expected"), [
    ([Status.PASSED, Status.SKIPPED, Status.XFAILED], "success"),
    ([Status.PASSED, Status.WARNED], "warning"),
    ([Status.WARNED, Status.ERROR], "failure"),
    ([Status.XPASSED], "failure"),
])
def test_conclusion_is_the_worst_outcome(statuses: list[Status], expected: str) -> None:
    run = run_of(unit("m", *(result(f"c.{i}", s) for i, s in enumerate(statuses))))
    assert gh.conclusion(run) == expected
    run.interrupted = True
    assert gh.conclusion(run) == "cancelled"


def test_publish_writes_annotations_summary_and_outputs(tmp_path: Path) -> None:
    out, summary = tmp_path / "out", tmp_path / "summary"
    out.write_text("earlier=1\n", encoding="utf-8")
    env = {"GITHUB_OUTPUT": str(out), "GITHUB_STEP_SUMMARY": str(summary),
           "GITHUB_WORKSPACE": str(tmp_path)}
    run = run_of(unit("m", result("forward.runs", Status.FAILED, "bad", file="m.py", line=2)))
    stream = io.StringIO()
    gh.publish(run, fail_on="never", junit_path=str(tmp_path / "j.xml"), stream=stream, env=env)
    assert [c[0] for c in replay_log(stream.getvalue())] == ["error"]
    values = read_outputs(out.read_text(encoding="utf-8"))
    assert values["earlier"] == "1"  # appended, never truncated
    assert (values["failed"], values["conclusion"], values["junit-file"]) == (
        "1", "failure", "j.xml")
    assert "this step passes" in summary.read_text(encoding="utf-8")  # fail-on never

    quiet = io.StringIO()
    summary.unlink()
    gh.publish(run, fail_on="failure", junit_path=None, stream=quiet, env=env,
               annotate=False, summarize=False)
    assert quiet.getvalue() == "" and not summary.exists()
    assert read_outputs(out.read_text(encoding="utf-8"))["junit-file"] == ""


# --------------------------------------------------------------------------- the CLI hook


@pytest.mark.slow
def test_cli_github_mode_wraps_user_output_and_annotates_the_culprit(tmp_path: Path) -> None:
    """`torchvet run` with GITHUB_ACTIONS=true (the plain CLI on a self-hosted runner)."""
    workspace = copy_fixture("buggy", tmp_path / "ws")
    outputs, summary = tmp_path / "outputs", tmp_path / "summary"
    culprit = culprit_line(workspace / "src" / "buggy_models" / "models.py")
    proc = run_cli("run", str(workspace), "--junit", str(workspace / "junit.xml"), env={
        "GITHUB_ACTIONS": "true", "GITHUB_WORKSPACE": str(workspace),
        "GITHUB_OUTPUT": str(outputs), "GITHUB_STEP_SUMMARY": str(summary)})
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert proc.stdout.startswith("::stop-commands::")
    commands = replay_log(proc.stdout)
    assert commands, proc.stdout
    for name, props, _ in commands:
        assert name == "error"
        assert props["file"] == "src/buggy_models/models.py"
        assert props["line"] == str(culprit)
    # both problems of the dead layer's line share its one annotation
    assert any(p["title"] == "torchvet: dead_layer · training.gradients, training.update"
               for _, p, _ in commands)
    values = read_outputs(outputs.read_text(encoding="utf-8"))
    assert values["conclusion"] == "failure" and int(values["failed"]) >= 1
    assert values["junit-file"] == "junit.xml"
    assert "dead\\_layer" in summary.read_text(encoding="utf-8")


def test_cli_github_mode_reports_dead_units_once_and_the_real_failure_at_its_line(
        tmp_path: Path) -> None:
    """Issue 26's Done-when through the CLI (the action runs the same reporter): units
    dying by a signal and by an exit code while being built, and a real failure."""
    workspace = copy_fixture("mixed", tmp_path / "ws")
    outputs, summary = tmp_path / "outputs", tmp_path / "summary"
    models = workspace / "src" / "mixed_models" / "models.py"
    proc = run_cli("run", str(workspace), "--junit", str(workspace / "junit.xml"),
                   "--json", str(tmp_path / "run.json"), env={
                       "GITHUB_ACTIONS": "true", "GITHUB_WORKSPACE": str(workspace),
                       "GITHUB_OUTPUT": str(outputs), "GITHUB_STEP_SUMMARY": str(summary)})
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert_mixed_case(replay_log(proc.stdout), read_outputs(outputs.read_text("utf-8")),
                      summary.read_text("utf-8"), workspace / "junit.xml",
                      tmp_path / "run.json", culprit_line(models))


@pytest.mark.slow
def test_cli_github_mode_keeps_user_code_away_from_outputs_and_tokens(tmp_path: Path) -> None:
    workspace = copy_fixture("hostile", tmp_path / "ws")
    outputs = tmp_path / "outputs"
    proc = run_cli("run", str(workspace), "--json", str(tmp_path / "r.json"), env={
        "GITHUB_ACTIONS": "true", "GITHUB_WORKSPACE": str(workspace),
        "GITHUB_OUTPUT": str(outputs), "GITHUB_TOKEN": "SENTINEL-1",
        "ACTIONS_RUNTIME_TOKEN": "SENTINEL-2"})
    assert proc.returncode == 1, proc.stdout + proc.stderr
    commands = replay_log(proc.stdout)
    assert {name for name, _, _ in commands} == {"error"}
    assert all(p["title"].startswith("torchvet: hostile · ") for _, p, _ in commands)
    report = (tmp_path / "r.json").read_text(encoding="utf-8")
    assert "env GITHUB_OUTPUT=None" in report and "env GITHUB_TOKEN=None" in report
    assert "SENTINEL" not in report + proc.stdout
    values = read_outputs(outputs.read_text(encoding="utf-8"))
    assert "hostile" not in values and values["conclusion"] == "failure"


def test_an_interrupted_run_says_so() -> None:
    run = run_of(unit("m", result("forward.runs", Status.CANCELLED, "cancelled")),
                 interrupted=True)
    text = gh.render_summary(run, env={})
    assert text.startswith("## 🚫 torchvet: 1 unit: 1 cancelled · checks: 1 cancelled")
    assert "the run was interrupted" in text and "this step" not in text


def test_a_run_that_could_not_start_says_why_with_error_outputs(tmp_path: Path) -> None:
    summary, out = tmp_path / "summary", tmp_path / "outputs"
    env = {"GITHUB_STEP_SUMMARY": str(summary), "GITHUB_OUTPUT": str(out)}
    gh.publish_failure("install failed", "pip: <no> | @octo\n\nlast line", env=env)
    text = summary.read_text(encoding="utf-8")
    assert text.startswith("## 💥 torchvet could not run: install failed\n\n<pre>")
    assert "&lt;no&gt; &#124; &#64;octo" in text and text.count("</pre>") == 1
    values = read_outputs(out.read_text(encoding="utf-8"))
    assert values == {"passed": "0", "failed": "0", "errors": "0", "skipped": "0",
                      "not-run": "0", "warnings": "0", "conclusion": "error", "junit-file": "",
                      "failures": ""}
    # the same outputs a finished run has, so later steps can read either
    assert set(values) == set(gh.outputs(run_of(), None, {}))
    gh.publish_failure("x", "y", summarize=False, env=env)
    assert summary.read_text(encoding="utf-8") == text


def test_a_problem_with_a_loss_curve_gets_a_mermaid_chart_in_the_summary() -> None:
    result = CheckResult("training.overfit", Status.FAILED, "levels off", "curve", "m.py", 3,
                         data={"curves": {"Adam lr 0.01": [2.3, 1.9, 1.6]}})
    text = gh.render_summary(RunReport([UnitReport("net", results=[result])]), env={})
    block = text[text.index("<details>"):text.index("</details>")]
    assert "```mermaid\nxychart-beta\n" in block
    assert "line [2.3, 1.9, 1.6]" in block


# --------------------------------------------------------------------------- many problems


def test_dead_units_are_annotated_once_each_and_the_real_failure_at_its_line() -> None:
    """Issue 26: two units whose workers died and one real failure; 12 more dead units
    cannot push the failure out of GitHub's 10 error slots."""
    run = broken_run()
    shown, omitted = gh.build_annotations(run)
    assert [(a.title, a.file, a.line) for a in shown] == [
        ("torchvet: head · training.gradients, training.update", "src/head.py", 11),
        ("torchvet: sig (error)", "src/sig.py", 5),
        ("torchvet: code (error)", "src/code.py", 7)]
    assert shown[0].message == ("head · training.gradients: head.weight received no "
                                "gradient\nhead · training.update: head.weight never changed")
    assert shown[1].message.startswith("the worker process was killed by signal 11")
    assert shown[1].message.endswith("loading weights") and not omitted

    crowded = broken_run()
    sig = crowded.reports[0]
    crowded.reports[:0] = [
        replace(sig, name=f"dead{i}", results=[replace(sig.results[0], file=f"src/d{i}.py"),
                                               *sig.results[1:]]) for i in range(12)]
    shown, omitted = gh.build_annotations(crowded)
    assert len(shown) == 10 and shown[0].title.startswith("torchvet: head")
    assert omitted == {"error": ["dead9", "dead10", "dead11", "sig", "code"]}


def test_the_summary_reads_as_units_and_checks_grouped_by_unit_and_collapsed() -> None:
    run = broken_run(snapshotless=4)
    text = gh.render_summary(run, env={})
    assert text.startswith("## ❌ torchvet: 7 units: 1 failed, 2 errored, 4 passed · checks: "
                           "2 failed, 5 passed, 12 skipped, 60 not run\n")
    problems = text[text.index("### Problems"):text.index("### Captured output")]
    blocks = re.findall(r"<summary>(.*?)</summary>", problems)
    assert blocks == [
        "❌ <b>head</b> · <code>training.gradients</code> (failed): head.weight received no "
        "gradient",
        "❌ <b>head</b> · <code>training.update</code> (failed): head.weight never changed",
        "💥 <b>sig</b> (the unit) (error): the worker process was killed by signal 11 "
        "(SIGSEGV: segmentation fault in native code) while building the unit (factory "
        "call or first forward)",
        "💥 <b>code</b> (the unit) (error): the worker process exited with code 3 while "
        "building the unit (factory call or first forward)"]
    quiet = text[text.index("72 skipped, expected or not run check(s)"):]
    items = re.findall(r"<li>(.*?)</li>", quiet)
    assert items == [
        "⏭️ <code>regression.*</code> (3 checks) skipped on 4 units (ok0, ok1, ok2, ok3): "
        "no snapshot: create it with `torchvet snapshot`",
        "⛔ <code>forward.*</code> (30 checks) not run on 2 units (sig, code): "
        "the unit&#39;s worker died before its checks ran"]


def test_skips_naming_their_unit_collapse_across_units_with_the_name_generic() -> None:
    run = run_of(*(unit(name, *(result(f"regression.{c}", Status.SKIPPED,
                                       f"no snapshot .torchvet/snapshots/{name}.json: create "
                                       "it with `torchvet snapshot`")
                                for c in ("signature", "outputs")),
                        result("export.compile", Status.SKIPPED, f"opt-in for {name}"))
                   for name in ("net", "network")))
    items = re.findall(r"<li>(.*?)</li>", gh.render_summary(run, env={}))
    assert items == [
        "⏭️ <code>regression.signature</code>, <code>regression.outputs</code> skipped on 2 "
        "units (net, network): no snapshot .torchvet/snapshots/&lt;unit&gt;.json: create it "
        "with `torchvet snapshot`",
        "⏭️ <code>export.compile</code> skipped on 2 units (net, network): opt-in for "
        "&lt;unit&gt;"]


def test_the_outputs_count_errored_units_once_and_their_checks_as_not_run() -> None:
    values = gh.outputs(broken_run(), None, env={})
    assert (values["errors"], values["failed"], values["not-run"], values["skipped"]) == (
        "2", "2", "60", "0")
    assert values["failures"].splitlines() == [
        "head:training.gradients", "head:training.update", "sig:unit", "code:unit"]


def test_problems_on_one_line_with_one_cause_share_an_annotation_across_units() -> None:
    shared = [unit(name, result("forward.finite", Status.FAILED, "NaN in output",
                                file="src/layers.py", line=30)) for name in ("a", "b")]
    shown, _ = gh.build_annotations(run_of(*shared))
    [annotation] = shown
    assert annotation.title == "torchvet: a · forward.finite; b · forward.finite"
    assert annotation.message == "NaN in output" and annotation.line == 30
