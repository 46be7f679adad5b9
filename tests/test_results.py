"""Result records: JSON round trip, unit status, exit codes, merging shards."""

from __future__ import annotations

import json

import pytest

from torchvet.results import (
    DETAILS_LIMIT,
    MESSAGE_LIMIT,
    OUTPUT_LIMIT,
    CheckResult,
    RunReport,
    Status,
    UnitReport,
    clean_run,
    clean_text,
    exit_code_for,
    merge_runs,
)


def report(name: str, *statuses: Status, label: str = "") -> UnitReport:
    return UnitReport(
        name=name, dist="d", target="m:f", file="src/m.py", line=3, label=label,
        results=[CheckResult(f"forward.c{i}", s, f"msg {i}", "details", "src/m.py", 7, 0.0)
                 for i, s in enumerate(statuses)],
        output="captured\n",
    )


def test_json_round_trip_is_lossless() -> None:
    run = RunReport([report("a", Status.PASSED, Status.FAILED), report("b", Status.SKIPPED)],
                    seed=4, torch_version="2.13.0", torchvet_version="0.1.0", duration=1.5,
                    interrupted=True)
    data = json.loads(json.dumps(run.to_dict()))
    again = RunReport.from_dict(data)
    assert again.to_dict() == run.to_dict()
    assert data["counts"] == {"failed": 1, "passed": 1, "skipped": 1}


def test_structured_data_round_trips_and_stays_out_of_the_json_when_empty() -> None:
    curve = {"curves": {"Adam lr 0.01": [2.3, None, 0.6]},
             "table": {"columns": ["layer", "dead"], "rows": [["0", 0.5]]}}
    with_data = CheckResult("training.overfit", Status.FAILED, "m", data=curve)
    assert CheckResult.from_dict(json.loads(json.dumps(with_data.to_dict()))) == with_data
    assert "data" not in CheckResult("forward.runs", Status.PASSED).to_dict()
    assert CheckResult.from_dict({"id": "forward.runs", "status": "passed"}).data == {}


def test_unknown_schema_or_status_is_rejected() -> None:
    with pytest.raises(ValueError, match="schema"):
        RunReport.from_dict({"schema": 99})
    with pytest.raises(ValueError, match="unknown status 'fine'"):
        Status.from_str("fine")


@pytest.mark.parametrize(("statuses", "expected"), [
    ((Status.PASSED, Status.SKIPPED), Status.PASSED),
    ((Status.SKIPPED, Status.SKIPPED), Status.SKIPPED),
    ((Status.PASSED, Status.WARNED), Status.WARNED),
    ((Status.PASSED, Status.FAILED, Status.ERROR), Status.ERROR),
    ((Status.XFAILED, Status.PASSED), Status.PASSED),
    ((Status.CANCELLED, Status.PASSED), Status.CANCELLED),
])
def test_unit_status_is_the_worst_decisive_result(statuses: tuple, expected: Status) -> None:
    assert report("u", *statuses).status is expected


def test_exit_codes_follow_fail_on() -> None:
    warned = RunReport([report("a", Status.PASSED, Status.WARNED)])
    failed = RunReport([report("a", Status.FAILED)])
    xpassed = RunReport([report("a", Status.XPASSED)])
    assert exit_code_for(warned, "failure") == 0
    assert exit_code_for(warned, "warning") == 1
    assert exit_code_for(failed, "failure") == 1
    assert exit_code_for(failed, "never") == 0
    assert exit_code_for(xpassed, "failure") == 1


def test_merge_keeps_every_unit_and_cell() -> None:
    shard1 = RunReport([report("a", Status.PASSED)], duration=2.0, torch_version="2.4")
    shard2 = RunReport([report("b", Status.FAILED), report("a", Status.PASSED, label="torch 2.5")],
                       duration=3.0)
    merged = merge_runs([shard1, shard2])
    assert [(r.name, r.label) for r in merged.reports] == [("a", ""), ("a", "torch 2.5"),
                                                           ("b", "")]
    assert merged.duration == 3.0 and merged.torch_version == "2.4"
    assert merged.reports[1].display_name == "a[torch 2.5]"


# --------------------------------------------------------------------------- sanitising


def test_clean_text_survives_any_string() -> None:
    text = "lone \ud800 surrogate, NUL\x00, bell\x07, \x1b[31mred\x1b[0m, \ufffe, tab\tok\r\n"
    assert clean_text(text) == ("lone \ufffd surrogate, NUL, bell\ufffd, red, \ufffd, "
                                "tab\tok\r\n")
    clean_text(text).encode("utf-8")  # no lone surrogate left


def test_clean_text_caps_with_a_marker_and_is_idempotent() -> None:
    text = "é" * 10_000  # 20_000 bytes of UTF-8
    head = clean_text(text, 1000)
    assert len(head.encode()) <= 1000 and head.startswith("é")
    assert head.endswith(f"[… {20_000 - 952} bytes left out …]")
    assert clean_text(head, 1000) == head
    tail = clean_text("start " + "x" * 5000 + " end", 100, keep="tail")
    assert tail.startswith("[… ") and tail.endswith(" end") and len(tail.encode()) <= 100
    assert clean_text(tail, 100, keep="tail") == tail


def test_clean_run_caps_every_string_a_unit_can_choose() -> None:
    unit = UnitReport("net", output="o" * (OUTPUT_LIMIT + 10), results=[CheckResult(
        "forward.runs\x00", Status.ERROR, "m" * (MESSAGE_LIMIT * 4), "d\ud800" * DETAILS_LIMIT,
        "src/\x1b[1mm.py", 3)])
    run = clean_run(RunReport([unit]))
    [result] = run.reports[0].results
    assert result.id == "forward.runs" and result.file == "src/m.py"
    assert len(result.message.encode()) <= MESSAGE_LIMIT and "bytes left out" in result.message
    assert len(result.details.encode()) <= DETAILS_LIMIT and "\ud800" not in result.details
    assert run.reports[0].output.startswith("[… ") and "bytes left out" in run.reports[0].output
    json.dumps(run.to_dict(), ensure_ascii=False).encode("utf-8")


# --------------------------------------------------------------------------- unit errors


def test_an_errored_unit_counts_once_as_a_unit_and_its_checks_as_not_run() -> None:
    from tests.helpers import broken_run
    run = broken_run()
    sig = run.reports[0]
    assert sig.status is Status.ERROR and sig.unit_error is sig.results[0]
    assert sig.unit_error.is_unit and not sig.results[1].is_unit
    assert run.counts()[Status.ERROR] == 2  # one per dead unit, not one per check
    assert run.unit_counts() == {Status.ERROR: 2, Status.FAILED: 1}
    assert run.check_counts() == {Status.NOT_RUN: 60, Status.FAILED: 2, Status.PASSED: 1}
    assert Status.NOT_RUN.label == "not run" and not Status.NOT_RUN.is_bad
    # not run says nothing about the model: the unit's status comes from the rest
    assert report("u", Status.PASSED, Status.NOT_RUN).status is Status.PASSED
    assert exit_code_for(run, "failure") == 1
    assert exit_code_for(RunReport([report("u", Status.PASSED, Status.NOT_RUN)]),
                         "failure") == 0


def test_not_run_round_trips_and_a_report_written_before_it_still_reads() -> None:
    from tests.helpers import broken_run
    run = broken_run()
    data = json.loads(json.dumps(run.to_dict()))
    assert data["counts"]["not_run"] == 60 and data["counts"]["error"] == 2
    assert RunReport.from_dict(data).to_dict() == run.to_dict()
    # an older report (every check of a dead unit an error, no unit result) still reads
    old = {"schema": 1, "reports": [{"name": "m", "results": [
        {"id": "forward.runs", "status": "error", "message": "not run: the worker process "
         "exited with code 3 while building the unit"}], "peak_memory": 5}]}
    again = RunReport.from_dict(old)
    assert again.reports[0].status is Status.ERROR and again.reports[0].unit_error is None
    assert again.reports[0].peak_memory == 5  # what --durations reads
