"""GitHub Actions reporter: annotations, job summary, step outputs (being written)."""

from __future__ import annotations

from typing import TextIO

from ..results import RunReport


def publish(run: RunReport, *, fail_on: str, junit_path: str | None, stream: TextIO) -> None:
    raise NotImplementedError("the GitHub reporter is not written yet")
