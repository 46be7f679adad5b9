"""Tracebacks that start at the user's code: torchvet's own frames (the check, the
context, the worker) are dropped from a verdict's details, with one marker line saying
so, the way pytest hides its internals. Every verdict passes through here once, on its
way out of the worker, so the terminal, JUnit, JSON and the job summary all agree.

A traceback made only of torchvet frames is kept whole: the fault is ours, and whoever
reports it needs them.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

MARKER = "  (torchvet frames hidden; --full-trace shows them)"
PACKAGE_DIR = str(Path(__file__).resolve().parent.parent)
_HEADER = "Traceback (most recent call last):"
_FRAME = re.compile(r'^  File "(?P<file>[^"]+)", line \d+, in ')


def is_torchvet_file(file: str) -> bool:
    return os.path.realpath(file).startswith(PACKAGE_DIR + os.sep)


def _frames(lines: list[str], start: int) -> tuple[list[tuple[str, list[str]]], int]:
    """The frames of the traceback whose header is at ``start - 1``: (file, lines)
    pairs, and the index of the first line after them."""
    frames: list[tuple[str, list[str]]] = []
    index = start
    while index < len(lines):
        match = _FRAME.match(lines[index])
        if match:
            frames.append((match["file"], [lines[index]]))
        elif lines[index].startswith("    ") and frames:
            frames[-1][1].append(lines[index])  # the frame's source line and carets
        elif lines[index].startswith("  [Previous line repeated") and frames:
            frames[-1][1].append(lines[index])
        else:
            break
        index += 1
    return frames, index


def hide_torchvet_frames(text: str) -> str:
    """``text`` with torchvet's frames dropped from every traceback in it."""
    if _HEADER not in text:
        return text
    lines = text.split("\n")
    out: list[str] = []
    index = 0
    while index < len(lines):
        line = lines[index]
        out.append(line)
        index += 1
        if line.strip() != _HEADER:
            continue
        frames, index = _frames(lines, index)
        users = [frame for frame in frames if not is_torchvet_file(frame[0])]
        if users and len(users) < len(frames):
            out.append(MARKER)
            frames = users
        for _, body in frames:
            out.extend(body)
    return "\n".join(out)
