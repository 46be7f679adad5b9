"""The container's log on the terminal (stop-commands honoured as the runner does), the
outputs file read back, and the stand-in report of a cell that wrote none."""

from __future__ import annotations

import io
import json
from pathlib import Path

from torchvet.action import failures
from torchvet.action.docker.logs import (
    LineBuffer,
    LogRenderer,
    Printer,
    read_outputs,
    setup_report,
)
from torchvet.github import reporter as gh
from torchvet.github import workflow
from torchvet.reporters import json_report
from torchvet.results import Status


def test_the_log_renderer_follows_stop_commands_like_the_runner() -> None:
    renderer = LogRenderer()
    shown: list[str] = []
    for line in [
        "::group::torchvet run",
        "::stop-commands::aB12",
        "::error title=fake::from user code",
        "::endgroup::",
        "::ab12::",
        "::endgroup::",
        workflow.command("error", "unused_proj never gets a gradient\nfix: use it",
                         file="src/m.py", line=12, title="torchvet: dead_layer · training.grad"),
        "plain line",
    ]:
        shown += renderer.feed(line)
    assert shown == [
        "▶ torchvet run",
        "::error title=fake::from user code",  # inside the block: text, not a command
        "::endgroup::",
        "error: torchvet: dead_layer · training.grad (src/m.py:12)",
        "    unused_proj never gets a gradient",
        "    fix: use it",
        "plain line",
    ]
    [note] = renderer.annotations
    assert (note.title, note.file, note.line) == (
        "torchvet: dead_layer · training.grad", "src/m.py", "12")


def test_raw_log_shows_every_line_unchanged() -> None:
    renderer = LogRenderer(raw=True)
    lines = ["::group::x", "::stop-commands::t", "::error::u", "::t::", "::endgroup::",
             "::warning title=a%3Ab::m%25"]
    assert [out for line in lines for out in renderer.feed(line)] == lines
    assert [(a.level, a.title, a.message) for a in renderer.annotations] == [
        ("warning", "a:b", "m%")]


def test_line_buffer_joins_chunks_into_lines() -> None:
    buffer = LineBuffer()
    assert buffer.feed(b"one\r\ntw") == ["one"]
    assert buffer.feed("o\nthr\u00e9".encode()) == ["two"]
    assert buffer.flush() == ["thré"]


def test_the_printer_shows_control_characters_instead_of_obeying_them() -> None:
    out = io.StringIO()
    Printer(out).line("red \x1b[31mtext\r", "[torch 2.4] ")
    assert out.getvalue() == "[torch 2.4] red \\x1b[31mtext\\x0d\n"


def test_outputs_are_read_as_the_runner_reads_them() -> None:
    text = gh.format_outputs({"passed": "3", "failures": "a:b\nc:d", "conclusion": "failure"})
    assert read_outputs(text) == {"passed": "3", "failures": "a:b\nc:d",
                                  "conclusion": "failure"}


def renderer_with(title: str, message: str) -> LogRenderer:
    renderer = LogRenderer()
    renderer.feed(workflow.command("error", message, title=f"torchvet: {title}"))
    return renderer


def test_a_torch_install_failure_is_an_error_naming_pips_reason() -> None:
    message = ("pip could not install torch==2.3.1 from https://download.pytorch.org/whl/cpu "
               "(exit 1). Check 'torch-version' and 'torch-index-url'. pip's last lines:\n"
               "ERROR: Could not find a version that satisfies the requirement torch==2.3.1\n"
               "ERROR: No matching distribution found for torch==2.3.1")
    renderer = renderer_with(failures.TORCH_INSTALL, message)
    run_report = setup_report(version="2.3.1", label="torch 2.3.1", code=2,
                              annotations=renderer.annotations, tail=[])
    [unit] = run_report.reports
    assert (unit.display_name, unit.kind, unit.status) == (
        "setup[torch 2.3.1]", "setup", Status.ERROR)
    [result] = unit.results
    assert result.id == "setup.torch"
    assert result.message == ("torch 2.3.1 could not be installed: pip: No matching "
                              "distribution found for torch==2.3.1")
    assert message in result.details


def test_an_unreachable_index_is_named_as_the_reason() -> None:
    message = ("pip could not install torch==2.3.1 from https://download.pytorch.org/whl/cpu "
               "(exit 1). pip's last lines:\n"
               "WARNING: Retrying (Retry(total=0)) after connection broken by "
               "'NewConnectionError('<HTTPSConnection>: Failed to establish a new "
               "connection: [Errno -2] Name or service not known')': /whl/cpu/torch/\n"
               "ERROR: No matching distribution found for torch==2.3.1")
    renderer = renderer_with(failures.TORCH_INSTALL, message)
    report = setup_report(version="2.3.1", label="torch 2.3.1", code=2,
                          annotations=renderer.annotations, tail=[])
    assert report.reports[0].results[0].message == (
        "torch 2.3.1 could not be installed: pip: No matching distribution found for "
        "torch==2.3.1 (a package index could not be reached: check the URL and the network)")


def test_each_failure_of_the_entrypoint_is_its_setup_check() -> None:
    """The titles the entrypoint writes (action/failures.py) map to setup checks."""
    expected = {failures.TORCH_INSTALL: "setup.torch", failures.INSTALL: "setup.install",
                f"{failures.INVALID_INPUT} 'fail-on'": "setup.inputs",
                failures.PATH_NOT_FOUND: "setup.path",
                failures.NOTHING_TO_INSTALL: "setup.path",
                failures.NO_FACTORIES: "setup.config",
                failures.CONFIGURATION: "setup.config", failures.INTERNAL: "setup.container"}
    for title, check in expected.items():
        report = setup_report(version="", label="", code=2, tail=[],
                              annotations=renderer_with(title, "why\nmore").annotations)
        [result] = report.reports[0].results
        assert result.id == check, title
        if check not in ("setup.torch", "setup.install"):
            assert result.message == f"{title}: why"


def test_a_container_without_report_or_annotation_is_an_error_with_its_log() -> None:
    report = setup_report(version="", label="", code=137, annotations=[],
                          tail=["Killed"])
    [result] = report.reports[0].results
    assert result.status is Status.ERROR and "exited with code 137" in result.message
    assert "Killed" in result.details
    cancelled = setup_report(version="", label="", code=143, annotations=[], tail=[],
                             cancelled=True)
    assert cancelled.reports[0].results[0].status is Status.CANCELLED
    assert cancelled.interrupted


def test_setup_reports_round_trip(tmp_path: Path) -> None:
    """The merged JSON is a normal report: `torchvet merge` reads it."""
    report = setup_report(version="2.3.1", label="torch 2.3.1", code=2, annotations=[],
                          tail=["x"])
    path = tmp_path / "r.json"
    json_report.write(report, path)
    data = json.loads(path.read_text(encoding="utf-8"))
    assert data["reports"][0]["label"] == "torch 2.3.1"
    assert json_report.read(path).reports[0].display_name == "setup[torch 2.3.1]"
