"""What the fixture project ``mixed`` (two units that die, one real failure) must
report, wherever it runs: the CLI in GitHub mode and the action's image."""

from __future__ import annotations

from pathlib import Path

from junitparser import Error, Failure, JUnitXml, Skipped

from torchvet.reporters import json_report
from torchvet.results import Status


def assert_mixed_case(commands: list[tuple[str, dict[str, str], str]],
                      outputs: dict[str, str], summary: str, junit_xml: Path,
                      json_path: Path, culprit: int) -> None:
    """What the fixture ``mixed`` must report, wherever it runs (CLI or action image)."""
    errors = [(p["file"], int(p["line"]), p["title"], data)
              for name, p, data in commands if name == "error"]
    file = "src/mixed_models/models.py"
    source = (junit_xml.parent / file).read_text("utf-8").splitlines()
    crashes, exits = (next(i for i, text in enumerate(source, 1) if f"def make_{name}(" in text)
                      for name in ("crashes", "exits"))
    assert [e[:3] for e in errors] == [
        (file, culprit, "torchvet: dead_head · training.gradients, training.update"),
        (file, crashes, "torchvet: crashes (error)"), (file, exits, "torchvet: exits (error)")]
    assert "killed by signal 11 (SIGSEGV" in errors[1][3]
    assert errors[1][3].endswith("crashes: loading the native extension")
    assert "exited with code 3" in errors[2][3]
    assert errors[2][3].endswith("exits: the config is missing, giving up")
    assert summary.startswith("## ❌ torchvet: 3 units: 1 failed, 2 errored · checks: 2 failed, ")
    assert summary.count("(the unit) (error)") == 2
    assert "30 checks not run on 2 units (crashes, exits)" in summary
    assert (outputs["errors"], outputs["failed"], outputs["not-run"]) == ("2", "2", "60")
    assert outputs["failures"].splitlines() == [
        "dead_head:training.gradients", "dead_head:training.update", "crashes:unit",
        "exits:unit"]
    cases = {(s.name, c.name): c for s in JUnitXml.fromfile(str(junit_xml)) for c in s}
    errored = sorted(k for k, c in cases.items() if c.result and isinstance(c.result[0], Error))
    failed = sorted(k for k, c in cases.items()
                    if c.result and isinstance(c.result[0], Failure))
    assert errored == [("crashes", "unit"), ("exits", "unit")]
    assert failed == [("dead_head", "training.gradients"), ("dead_head", "training.update")]
    assert all(isinstance(c.result[0], Skipped) for (s, n), c in cases.items()
               if s in ("crashes", "exits") and n != "unit")
    run = json_report.read(json_path)
    assert run.counts()[Status.ERROR] == 2 and run.counts()[Status.NOT_RUN] == 60
