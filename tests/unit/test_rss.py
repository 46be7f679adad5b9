"""unit.rss: the worker's resident memory and its peak per interval (Linux: the kernel's
own high-water mark, reset between checks)."""

from __future__ import annotations

import sys

import pytest
import torch

from torchvet.unit import rss

MiB = 1 << 20
linux = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/proc: Linux only")


@linux
def test_meter_measures_the_peak_of_each_interval_not_of_the_process() -> None:
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


def test_resident_and_peak_are_positive_everywhere() -> None:
    assert rss.resident() > 0 and rss.peak() > 0
    rss.release_freed()  # a no-op where glibc is missing
