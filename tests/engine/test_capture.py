"""A unit's capture file stays small on disk however much it prints, and the report
keeps its last bytes with a count of what went before."""

from __future__ import annotations

import os
from pathlib import Path

from tests.helpers import eventually
from torchvet.engine import capture


def append(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)  # as a worker does
    try:
        os.write(fd, data)
    finally:
        os.close(fd)


def test_a_small_capture_is_read_whole(tmp_path: Path) -> None:
    path = tmp_path / "0-u.out"
    append(path, b"hello\n")
    assert capture.truncate(str(path), limit=1024) == 0
    assert capture.read_tail(str(path)) == "hello\n"


def test_truncation_keeps_the_tail_and_counts_what_went(tmp_path: Path) -> None:
    path = str(tmp_path / "0-u.out")
    append(Path(path), b"a" * 3_000_000)
    gone = capture.truncate(path, limit=1_000_000)
    assert os.path.getsize(path) == 0 and gone == 3_000_000 - capture.TAIL
    append(Path(path), b"b" * 10 + b"\nthe end\n")  # the worker goes on appending
    text = capture.read_tail(path)
    assert text.endswith("bbbbbbbbbb\nthe end\n")
    head, _, body = text.partition("\n")
    assert head == f"[… {3_000_000 + 19 - capture.TAIL} bytes left out …]"
    assert len(body.encode()) == capture.TAIL
    assert capture.read_tail(path) == "b" * 10 + "\nthe end\n"  # the record was consumed


def test_the_limiter_truncates_while_the_unit_prints(tmp_path: Path) -> None:
    path = tmp_path / "3-flood.out"
    with capture.CaptureLimiter(tmp_path, limit=200_000, poll=0.01):
        append(path, b"x" * 1_000_000)
        assert eventually(lambda: path.stat().st_size == 0, timeout=30)
    left_out = 1_000_000 - capture.TAIL
    assert capture.read_tail(str(path)).startswith(f"[… {left_out} bytes left out …]\n")
