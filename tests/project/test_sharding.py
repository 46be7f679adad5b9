"""--shard i/n balanced by recorded durations (torchvet.project.sharding), the reports they
are read from (session.recorded_units) and its CLI wiring."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from tests.helpers import run_cli
from torchvet.project.discovery import Factory, shard
from torchvet.project.sharding import (
    balanced_shards,
    estimates,
    recorded_durations,
    recorded_peaks,
    select_shard,
)
from torchvet.results import CheckResult, RunReport, Status, UnitReport
from torchvet.session import DurationsError, recorded_units, select_units


def units(n: int, datasets: int = 0) -> list[Factory]:
    made = [Factory(f"m{i:02d}", "model", "d", f"pkg.m:make{i}") for i in range(n)]
    return made + [Factory(f"d{i}", "dataset", "d", f"pkg.d:make{i}") for i in range(datasets)]


def skewed(factories: list[Factory]) -> dict[tuple[str, str], float]:
    """One 60 s unit, a few of 20 s, a long tail of 1 s ones (a real zoo's shape)."""
    seconds = [60.0, 20.0, 20.0, 20.0] + [1.0] * (len(factories) - 4)
    return {(f.kind, f.name): s for f, s in zip(factories, seconds, strict=True)}


def loads(shards: list[list[Factory]], cost: dict[tuple[str, str], float]) -> list[float]:
    return [sum(cost[(f.kind, f.name)] for f in s) for s in shards]


@pytest.mark.parametrize("total", [1, 2, 3, 4, 7])
def test_every_unit_in_exactly_one_shard(total: int) -> None:
    factories = units(23, datasets=2)
    durations = skewed(factories)
    for recorded in (durations, {}):
        picked = [f for i in range(1, total + 1)
                  for f in select_shard(factories, i, total, recorded)]
        assert sorted(picked, key=lambda f: (f.kind, f.name)) == sorted(
            factories, key=lambda f: (f.kind, f.name))
        assert len(set(picked)) == len(picked)


def test_deterministic_whatever_the_discovery_order() -> None:
    factories = units(30, datasets=3)
    durations = skewed(factories)
    expected = balanced_shards(factories, 4, durations)
    for seed in range(5):
        shuffled = list(factories)
        random.Random(seed).shuffle(shuffled)
        assert balanced_shards(shuffled, 4, durations) == expected
        assert [select_shard(shuffled, i, 4, durations) for i in range(1, 5)] == expected


def test_balanced_on_a_skewed_example() -> None:
    factories = units(40)
    durations = skewed(factories)  # 60 + 3 x 20 + 36 x 1 = 156 s
    shards = balanced_shards(factories, 3, durations)
    balanced = loads(shards, durations)
    assert max(balanced) == 60.0  # the longest unit alone; nothing can beat it
    assert sorted(balanced) == [48.0, 48.0, 60.0]
    by_name = loads([shard(factories, i, 3) for i in (1, 2, 3)], durations)
    assert max(by_name) == 92.0  # round-robin puts the 60 s and a 20 s unit together
    two = loads(balanced_shards(factories, 2, durations), durations)
    assert sorted(two) == [78.0, 78.0]


def test_unknown_units_count_as_the_median() -> None:
    factories = units(6)
    known = {("model", "m00"): 9.0, ("model", "m01"): 1.0, ("model", "m02"): 3.0}
    cost = estimates(factories, known)
    assert [cost[("model", f"m{i:02d}")] for i in range(6)] == [9.0, 1.0, 3.0, 3.0, 3.0, 3.0]
    assert estimates(factories, {}) == {(f.kind, f.name): 1.0 for f in factories}


def test_no_empty_shard_while_there_are_units() -> None:
    factories = units(5)
    zero = {(f.kind, f.name): 0.0 for f in factories}
    assert [len(s) for s in balanced_shards(factories, 5, zero)] == [1, 1, 1, 1, 1]
    assert [len(s) for s in balanced_shards(factories, 2, zero)] == [3, 2]


def test_without_durations_it_is_the_round_robin_by_name() -> None:
    factories = units(9)
    assert [select_shard(factories, i, 3) for i in (1, 2, 3)] == [
        shard(factories, i, 3) for i in (1, 2, 3)]
    with pytest.raises(ValueError):
        select_shard(factories, 4, 3)


def write_report(path: Path, seconds: dict[str, float], kind: str = "model",
                 peaks: dict[str, int] | None = None) -> Path:
    reports = [UnitReport(name=n, kind=kind, duration=s, peak_memory=(peaks or {}).get(n, 0),
                           results=[CheckResult("forward.runs", Status.PASSED)])
               for n, s in seconds.items()]
    run = RunReport(reports=reports, seed=0, torch_version="x", torchvet_version="y",
                    duration=sum(seconds.values()))
    path.write_text(json.dumps(run.to_dict()))
    return path


def test_recorded_durations_come_from_json_reports(tmp_path: Path) -> None:
    first = write_report(tmp_path / "a.json", {"m00": 5.0, "m01": 2.0})
    second = write_report(tmp_path / "b.json", {"m01": 4.0, "d0": 7.0}, kind="dataset")
    assert recorded_durations(recorded_units([first, second])) == {
        ("model", "m00"): 5.0, ("model", "m01"): 2.0, ("dataset", "m01"): 4.0,
        ("dataset", "d0"): 7.0}
    bad = tmp_path / "bad.json"
    bad.write_text('{"nope": 1}')
    with pytest.raises(DurationsError, match=r"--durations .*not a torchvet JSON report"):
        recorded_units([bad])
    with pytest.raises(DurationsError, match="cannot read"):
        recorded_units([tmp_path / "missing.json"])


def test_load_peaks_reads_the_recorded_peak_memory_of_each_unit(tmp_path: Path) -> None:
    first = write_report(tmp_path / "a.json", {"m00": 5.0, "m01": 2.0},
                         peaks={"m00": 3 << 30, "m01": 1 << 30})
    second = write_report(tmp_path / "b.json", {"m01": 4.0, "m02": 1.0},
                          peaks={"m01": 2 << 30})
    # later files win; a unit without a measured peak (an older report) is left out
    assert recorded_peaks(recorded_units([first, second])) == {("model", "m00"): 3 << 30,
                                                               ("model", "m01"): 2 << 30}


def test_a_unit_that_skipped_for_memory_records_no_peak(tmp_path: Path) -> None:
    skipped = CheckResult("training.loss", Status.SKIPPED,
                          "skipped for memory: training.loss needs about 9 GB ...")
    report = UnitReport(name="big", peak_memory=5 << 30, results=[skipped])
    run = RunReport(reports=[report])
    earlier = write_report(tmp_path / "a.json", {"big": 1.0}, peaks={"big": 12 << 30})
    later = tmp_path / "b.json"
    later.write_text(json.dumps(run.to_dict()))
    assert recorded_peaks(recorded_units([earlier])) == {("model", "big"): 12 << 30}
    assert recorded_peaks(recorded_units([earlier, later])) == {}, (
        "5 GB is not what all its checks need")


# --------------------------------------------------------------------------- the CLI

PROJECT = """\
[project]
name = "p"
version = "0"

[project.entry-points."torchvet.models"]
{entries}
"""


def project(root: Path, names: list[str]) -> Path:
    root.mkdir()
    entries = "\n".join(f'{n} = "pkg.m:make"' for n in names)
    (root / "pyproject.toml").write_text(PROJECT.format(entries=entries))
    return root


def test_cli_selection_uses_the_durations(tmp_path: Path) -> None:
    names = [f"m{i}" for i in range(6)]
    root = project(tmp_path / "p", names)
    report = write_report(tmp_path / "last.json",
                          {"m0": 50.0, "m1": 40.0, "m2": 5.0, "m3": 5.0, "m4": 5.0})
    picked = [[f.name for f in select_units(str(root), (), (), False, f"{i}/2",
                                                durations=[str(report)]).factories]
              for i in (1, 2)]
    # m5 is unknown: it counts as the median (5 s): 50 + 5 | 40 + 5 + 5 + 5
    assert picked == [["m0", "m4"], ["m1", "m2", "m3", "m5"]]
    by_name = [[f.name for f in select_units(str(root), (), (), False, f"{i}/2").factories]
               for i in (1, 2)]
    assert by_name == [["m0", "m2", "m4"], ["m1", "m3", "m5"]]


def test_durations_without_shard_feed_the_memory_scheduler(tmp_path: Path) -> None:
    root = project(tmp_path / "p", ["m0", "m1"])
    report = write_report(tmp_path / "last.json", {"m0": 1.0, "m1": 2.0},
                          peaks={"m0": 5 << 30})
    sel = select_units(str(root), (), (), False, durations=[str(report)])
    assert [f.name for f in sel.factories] == ["m0", "m1"]
    assert sel.peaks == {("model", "m0"): 5 << 30}


def test_cli_rejects_bad_durations(tmp_path: Path) -> None:
    root = project(tmp_path / "p", ["a", "b"])
    proc = run_cli("run", str(root), "--durations", str(root / "pyproject.toml"))
    assert proc.returncode == 2 and "not a torchvet JSON report" in proc.stderr
    proc = run_cli("run", str(root), "--shard", "1/2", "--durations",
                   str(root / "pyproject.toml"))
    assert proc.returncode == 2 and "not a torchvet JSON report" in proc.stderr
