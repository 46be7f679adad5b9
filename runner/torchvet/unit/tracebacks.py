"""Tracebacks that start at the user's code: torchvet's own frames (the check, the
context, the worker) are dropped from a verdict's details, with one marker line saying
so, the way pytest hides its internals. Every verdict passes through here once, on its
way out of the worker, so the terminal, JUnit, JSON and the job summary all agree.

A traceback made only of torchvet frames is kept whole: the fault is ours, and whoever
reports it needs them.

Frames inside torch (a meta-device failure runs through a dozen of ``torch/_refs``,
``_prims``, ``_library``) collapse too: each run of them becomes one line ("… 12
frames inside torch …"), keeping the innermost one when the traceback ends there, so
the details end with the user's frames and the line that raised.
"""

from __future__ import annotations

import functools
import importlib.util
import os
import re
from pathlib import Path

MARKER = "  (torchvet frames hidden; --full-trace shows them)"
PACKAGE_DIR = str(Path(__file__).resolve().parent.parent)
_HEADER = "Traceback (most recent call last):"
_FRAME = re.compile(r'^  File "(?P<file>[^"]+)", line \d+, in ')


def is_torchvet_file(file: str) -> bool:
    return os.path.realpath(file).startswith(PACKAGE_DIR + os.sep)


@functools.cache
def torch_dir() -> str | None:
    """Where the installed torch lives (found without importing it), or None."""
    spec = importlib.util.find_spec("torch")
    if spec is None or not spec.origin:
        return None
    return os.path.realpath(os.path.dirname(spec.origin))


def is_torch_file(file: str) -> bool:
    where = torch_dir()
    return where is not None and os.path.realpath(file).startswith(where + os.sep)


def torch_marker(count: int) -> str:
    return f"  … {count} frames inside torch … (--full-trace shows them)"


def _collapse_torch(frames: list[tuple[str, list[str]]]) -> list[list[str]]:
    """The frames' lines with every run of two or more torch frames made one marker
    line; a run that ends the traceback keeps its innermost frame (where it raised)."""
    out: list[list[str]] = []
    index = 0
    while index < len(frames):
        end = index
        while end < len(frames) and is_torch_file(frames[end][0]):
            end += 1
        run = end - index
        if run == 0:
            out.append(frames[index][1])
            index += 1
            continue
        last = end == len(frames)
        hidden = run - 1 if last else run
        if hidden >= 2:
            out.append([torch_marker(hidden)])
        else:
            out.extend(body for _, body in frames[index:index + hidden])
        if last:
            out.append(frames[end - 1][1])
        index = end
    return out


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
    """``text`` with torchvet's frames dropped from every traceback in it, and runs of
    frames inside torch collapsed to one line."""
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
        for body in _collapse_torch(frames):
            out.extend(body)
    return "\n".join(out)
