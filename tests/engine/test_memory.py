"""engine.memory: reading the memory a run may use (cgroup v2, cgroup v1, /proc/meminfo,
the override) from fake /proc and /sys trees, and the admission policy that hands it out
so that units never run beyond it together."""

from __future__ import annotations

from pathlib import Path

import pytest

from torchvet.engine.memory import (
    FORK_SERVER,
    HISTORY_MARGIN,
    Admission,
    GiB,
    MemoryReading,
    MiB,
    describe,
    parse_size,
    read_memory,
    usable,
)
from torchvet.errors import UsageError

MEMINFO = "MemTotal:       {total} kB\nMemFree:        1000 kB\nMemAvailable:   {available} kB\n"


def fake_root(tmp_path: Path, *, cgroup: str = "0::/\n", files: dict[str, str] | None = None,
              total_kb: int = 64 * 1024 * 1024, available_kb: int = 60 * 1024 * 1024) -> Path:
    root = tmp_path / "root"
    (root / "proc/self").mkdir(parents=True)
    (root / "proc/self/cgroup").write_text(cgroup)
    (root / "proc/meminfo").write_text(MEMINFO.format(total=total_kb, available=available_kb))
    for name, text in (files or {}).items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


def test_cgroup_v2_limit_less_its_unreclaimable_usage(tmp_path: Path) -> None:
    root = fake_root(tmp_path, files={
        "sys/fs/cgroup/cgroup.controllers": "cpu memory\n",
        "sys/fs/cgroup/memory.max": f"{6 * GiB}\n",
        "sys/fs/cgroup/memory.current": f"{2 * GiB}\n",
        "sys/fs/cgroup/memory.stat": f"anon 1\ninactive_file {GiB}\nactive_file 5\n",
    })
    reading = read_memory(root, environ={})
    # 6 GiB limit, 2 GiB used of which 1 GiB is reclaimable page cache
    assert reading == MemoryReading(5 * GiB, 6 * GiB,
                                    f"cgroup v2 {root}/sys/fs/cgroup/memory.max")


def test_cgroup_v2_nested_group_takes_the_tightest_ancestor(tmp_path: Path) -> None:
    root = fake_root(tmp_path, cgroup="0::/ci/job\n", files={
        "sys/fs/cgroup/cgroup.controllers": "memory\n",
        "sys/fs/cgroup/ci/job/memory.max": "max\n",
        "sys/fs/cgroup/ci/job/memory.current": f"{GiB}\n",
        "sys/fs/cgroup/ci/memory.max": f"{4 * GiB}\n",
        "sys/fs/cgroup/ci/memory.current": f"{3 * GiB}\n",
    })
    reading = read_memory(root, environ={})
    assert reading is not None
    assert (reading.available, reading.limit) == (GiB, 4 * GiB)
    assert reading.source.endswith("sys/fs/cgroup/ci/memory.max")


def test_cgroup_v1_limit_and_no_limit_falls_back_to_meminfo(tmp_path: Path) -> None:
    limited = fake_root(tmp_path / "a", cgroup="4:memory:/docker/abc\n", files={
        "sys/fs/cgroup/memory/memory.limit_in_bytes": f"{16 * GiB}\n",
        "sys/fs/cgroup/memory/memory.usage_in_bytes": f"{3 * GiB}\n",
        "sys/fs/cgroup/memory/memory.stat": f"cache 7\ntotal_inactive_file {GiB}\n",
    })
    reading = read_memory(limited, environ={})
    assert reading is not None and (reading.available, reading.limit) == (14 * GiB, 16 * GiB)
    assert reading.source.startswith("cgroup v1")
    unlimited = fake_root(tmp_path / "b", cgroup="4:memory:/\n", available_kb=8 * 1024 * 1024,
                          files={
        "sys/fs/cgroup/memory/memory.limit_in_bytes": "9223372036854771712\n",
        "sys/fs/cgroup/memory/memory.usage_in_bytes": f"{3 * GiB}\n",
    })
    assert read_memory(unlimited, environ={}) == MemoryReading(
        8 * GiB, 64 * GiB, "/proc/meminfo")


def test_meminfo_wins_when_the_machine_has_less_than_the_cgroup_allows(tmp_path: Path) -> None:
    root = fake_root(tmp_path, available_kb=2 * 1024 * 1024, total_kb=4 * 1024 * 1024, files={
        "sys/fs/cgroup/cgroup.controllers": "memory\n",
        "sys/fs/cgroup/memory.max": f"{16 * GiB}\n",
        "sys/fs/cgroup/memory.current": f"{GiB}\n",
    })
    assert read_memory(root, environ={}) == MemoryReading(2 * GiB, 4 * GiB, "/proc/meminfo")


def test_override_and_nothing_readable(tmp_path: Path) -> None:
    root = fake_root(tmp_path)
    assert read_memory(root, environ={"TORCHVET_MEMORY": "6g"}) == MemoryReading(
        6 * GiB, 6 * GiB, "$TORCHVET_MEMORY")
    assert read_memory(tmp_path / "nowhere", environ={}) is None
    with pytest.raises(UsageError, match="TORCHVET_MEMORY='lots': expected a size"):
        read_memory(root, environ={"TORCHVET_MEMORY": "lots"})


@pytest.mark.parametrize(("text", "size"), [
    ("6g", 6 * GiB), ("6 GiB", 6 * GiB), ("512M", 512 * MiB), ("1.5GB", 3 * GiB // 2),
    ("4096", 4096), ("2t", 2 << 40),
])
def test_parse_size(text: str, size: int) -> None:
    assert parse_size(text) == size


def test_usable_keeps_headroom_and_the_fork_servers_share() -> None:
    assert usable(MemoryReading(10 * GiB, 16 * GiB, "x")) == 9 * GiB - FORK_SERVER
    assert usable(MemoryReading(GiB, GiB, "x")) == GiB - 256 * MiB - FORK_SERVER
    assert usable(MemoryReading(100 * MiB, GiB, "x")) == 0
    assert describe(1.5 * GiB) == "1.5 GB" and describe(300 * MiB) == "300 MB"


# --------------------------------------------------------------------------- admission


def test_unlimited_admits_everything_in_full() -> None:
    admission = Admission(None)
    for key in "ab":
        assert admission.may_start(key)
        admission.start(key)
    [grant] = admission.footprint("a", baseline=GiB, need=100 * GiB)
    assert (grant.key, grant.grant, grant.alone) == ("a", 100 * GiB, False)


def test_units_that_fit_together_run_together() -> None:
    admission = Admission(10 * GiB)
    admission.start("a")
    assert admission.footprint("a", baseline=GiB, need=2 * GiB)[0].grant == 2 * GiB
    assert admission.may_start("b")
    admission.start("b")
    [grant] = admission.footprint("b", baseline=GiB, need=3 * GiB)
    assert grant.grant == 3 * GiB and grant.others == 3 * GiB and not grant.alone


def test_a_unit_that_does_not_fit_beside_another_waits_for_it() -> None:
    admission = Admission(6 * GiB)
    admission.start("a")
    assert admission.footprint("a", baseline=GiB, need=3 * GiB)[0].grant == 3 * GiB
    admission.start("b")
    assert admission.footprint("b", baseline=GiB, need=3 * GiB) == []  # 4 + 1 + 3 > 6
    assert not admission.may_start("c"), "nothing starts while a unit waits for memory"
    [grant] = admission.finish("a")
    assert (grant.key, grant.grant, grant.others, grant.alone) == ("b", 3 * GiB, 0, False)


def test_a_unit_too_large_to_fit_even_alone_runs_alone_with_what_is_left() -> None:
    admission = Admission(8 * GiB)
    admission.start("small")
    admission.footprint("small", baseline=GiB, need=GiB)
    admission.start("big")
    assert admission.footprint("big", baseline=6 * GiB, need=12 * GiB) == []
    [grant] = admission.finish("small")
    assert (grant.key, grant.grant, grant.alone) == ("big", 2 * GiB, True)


def test_two_units_of_unknown_size_never_build_at_once() -> None:
    admission = Admission(64 * GiB, history={"known": 2 * GiB})
    admission.start("a")
    assert not admission.may_start("b"), "a's size is unknown until its footprint"
    assert admission.may_start("known"), "a recorded peak says how much to hold"
    admission.footprint("a", baseline=GiB, need=GiB)
    assert admission.may_start("b")


def test_recorded_peaks_hold_memory_before_the_unit_starts_and_replace_estimates() -> None:
    admission = Admission(19 * GiB, history={"a": 10 * GiB, "b": 10 * GiB, "c": 2 * GiB})
    admission.start("a")
    assert not admission.may_start("b"), "10 + 10 GB recorded do not fit 19"
    [grant] = admission.footprint("a", baseline=GiB, need=2 * GiB)
    # the measured 10 GB peak (and 15 % for noise) beats the 1 + 2 GB estimate ...
    assert grant.grant == int(10 * GiB * HISTORY_MARGIN) - GiB
    admission.start("c")
    [grant] = admission.footprint("c", baseline=GiB, need=5 * GiB)
    # ... and a 1 + 5 GB estimate, when the unit measured 2 GB last time
    assert grant.grant == int(2 * GiB * HISTORY_MARGIN) - GiB
