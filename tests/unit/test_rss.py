"""unit.rss: the worker's resident memory and its peak per interval (Linux: the kernel's
own high-water mark, reset between checks)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from torchvet.unit import rss

MiB = 1 << 20
linux = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/proc: Linux only")


PEAK_PROBE = """
import torch
from torchvet.unit import rss
MiB = 1 << 20
meter = rss.Meter()
assert meter.exact, "clear_refs should be writable by the process itself"
meter.begin()
block = torch.ones(64 * MiB // 4)  # 64 MiB, touched
del block
rss.release_freed()
first = meter.end()
meter.begin()
second = meter.end()
assert first - second >= 60 * MiB, (first, second)
assert meter.unit_peak == max(first, second)
assert meter.own(meter.inherited + 5) == 5 and meter.own(0) == 0
"""


@linux
def test_meter_measures_the_peak_of_each_interval_not_of_the_process() -> None:
    # in a fresh interpreter, as a worker is: what earlier tests left allocated in this
    # process (freed but resident, or held by a cache) would blur a 64 MiB interval
    probe = subprocess.run([sys.executable, "-c", PEAK_PROBE], capture_output=True,
                           text=True)
    assert probe.returncode == 0, probe.stderr


def test_resident_and_peak_are_positive_everywhere() -> None:
    assert rss.resident() > 0 and rss.peak() > 0
    rss.release_freed()  # a no-op where glibc is missing
