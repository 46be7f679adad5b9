"""Write a results file of bench/results/: what a harness printed, and how to get it again.

Every results file starts with the command that regenerates it and the machine it ran
on, so a figure is never separated from how it was measured. The harnesses call
``write_results`` when given ``--write PATH``.
"""

from __future__ import annotations

import datetime
import os
import platform
import shlex
import subprocess
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def machine() -> str:
    """One line: cores, architecture, Python, torch, date and commit."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:
        cores = os.cpu_count() or 1
    try:
        import torch
        torch_version = torch.__version__
    except ImportError:
        torch_version = "not installed"
    proc = subprocess.run(["git", "-C", str(ROOT), "log", "-1", "--format=%h %s"],
                          capture_output=True, text=True)
    commit = proc.stdout.strip() or "unknown"
    return (f"{cores} core(s) ({platform.machine()}), Python {platform.python_version()}, "
            f"torch {torch_version}, {datetime.date.today().isoformat()}, commit {commit}")


def render_results(title: str, command: Sequence[str], body: str, *,
                   ran_on: str, notes: str = "") -> str:
    """The Markdown of a results file: title, the regenerating command, where it ran,
    then ``body`` (Markdown) and any ``notes``."""
    lines = [f"# {title}", "",
             "Regenerate with:", "", "```console", shlex.join(command), "```", "",
             f"Last written on: {ran_on}.", "", body.rstrip()]
    if notes.strip():
        lines += ["", notes.rstrip()]
    return "\n".join(lines) + "\n"


def write_results(path: str | Path, title: str, command: Sequence[str], body: str, *,
                  notes: str = "") -> Path:
    """Write ``body`` as a results file at ``path`` (created with its folder)."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(render_results(title, command, body, ran_on=machine(), notes=notes),
                      encoding="utf-8")
    return target


def text_block(text: str) -> str:
    """A harness's plain-text table as a Markdown code block."""
    return "```text\n" + text.rstrip() + "\n```"
