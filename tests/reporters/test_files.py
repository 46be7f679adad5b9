"""Report files: written by create-temp-then-rename (a symlink at the target is replaced,
never followed), read back only from a regular file of bounded size."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.helpers import sample_run
from torchvet.reporters import files, json_report, junit
from torchvet.results import CheckResult, RunReport, Status, UnitReport


def test_a_symlink_at_the_report_path_is_replaced_not_followed(tmp_path: Path) -> None:
    victim = tmp_path / "victim.txt"
    victim.write_text("precious\n")
    repo = tmp_path / "repo"
    repo.mkdir()
    for name in ("junit.xml", "report.json"):
        (repo / name).symlink_to(victim)
    junit.write(sample_run(), repo / "junit.xml")
    json_report.write(sample_run(), repo / "report.json")
    assert victim.read_text() == "precious\n"
    for name in ("junit.xml", "report.json"):
        assert not (repo / name).is_symlink() and (repo / name).stat().st_size > 100
    assert sorted(p.name for p in repo.iterdir()) == ["junit.xml", "report.json"]


def test_a_dangling_symlink_is_replaced_and_its_target_never_created(tmp_path: Path) -> None:
    (tmp_path / "out.xml").symlink_to(tmp_path / "elsewhere" / "planted")
    files.write_text(tmp_path / "out.xml", "<x/>")
    assert (tmp_path / "out.xml").read_text() == "<x/>"
    assert not (tmp_path / "elsewhere").exists()


def test_one_bad_string_does_not_lose_the_run(tmp_path: Path) -> None:
    """A lone surrogate and NUL in an exception message once broke both writers."""
    run = RunReport([UnitReport("u", output="out \x00\ud800", results=[
        CheckResult("forward.runs", Status.ERROR, "bad \ud800 x\x00y", "tb \udcff")])])
    junit.write(run, tmp_path / "j.xml")
    json_report.write(run, tmp_path / "r.json")
    again = json_report.read(tmp_path / "r.json")
    assert again.reports[0].results[0].message == "bad \ufffd xy"
    assert "\ufffd" in (tmp_path / "j.xml").read_text(encoding="utf-8")


def test_reading_refuses_symlinks_fifos_big_and_foreign_files(tmp_path: Path) -> None:
    real = tmp_path / "real.json"
    json_report.write(sample_run(), real)
    link = tmp_path / "link.json"
    link.symlink_to(real)
    assert json_report.read(link).reports  # torchvet merge follows what the user named
    with pytest.raises(json_report.ReportError, match="is a symlink"):
        json_report.read(link, follow_symlinks=False)
    fifo = tmp_path / "fifo.json"
    os.mkfifo(fifo)
    with pytest.raises(json_report.ReportError, match="not a regular file"):
        json_report.read(fifo, follow_symlinks=False)  # returns at once, never blocks
    with pytest.raises(json_report.ReportError, match="more than the 100 a report may"):
        json_report.read(real, limit=100)
    assert json_report.read(real, owner=os.getuid()).reports
    os.link(real, tmp_path / "hardlink.json")  # a hard link may name a file of root's
    with pytest.raises(json_report.ReportError, match="not a file the run wrote"):
        json_report.read(real, owner=os.getuid())
    with pytest.raises(json_report.ReportError, match="not a file the run wrote"):
        json_report.read(link.resolve(), owner=os.getuid() + 1)


def test_hostile_json_is_a_report_error_not_a_crash(tmp_path: Path) -> None:
    path = tmp_path / "r.json"
    for text in ('{"schema": 1, "reports": "abc"}', '{"schema": 1, "reports": [[1]]}',
                 '{"schema": 1, "reports": [{"name": "u", "results": [{"id": 1}]}]}',
                 "[" * 100_000 + "]" * 100_000):
        path.write_text(text)
        with pytest.raises(json_report.ReportError):
            json_report.read(path)
