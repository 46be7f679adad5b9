#!/usr/bin/env python3
"""Compare the verdicts of two ``torchvet run --json`` reports (the main torch's and
another supported torch's) check by check, and fail on any status difference that
``limits.toml`` does not document as that torch's limit.

A documented limit only excuses a skip or a warning under the other torch: a failure or
an error is never excused. Usage: compare.py MAIN.json OTHER.json [--limits FILE].
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import sys
from pathlib import Path
from typing import Any

import tomllib

Rows = dict[tuple[str, str], tuple[str, str]]
EXCUSABLE = {"skipped", "warned"}  # a limit never excuses "failed" or "error"


def load(path: Path) -> tuple[str, Rows]:
    data = json.loads(path.read_text(encoding="utf-8"))
    rows: Rows = {}
    for unit in data["reports"]:
        for result in unit["results"]:
            rows[(unit["name"], result["id"])] = (result["status"], result.get("message") or "")
    return str(data.get("torch_version", "?")), rows


def _version(text: str) -> tuple[int, ...]:
    return tuple(int(p) for p in text.split("+")[0].split(".")[:2])


def documented(limits: list[dict[str, Any]], torch: str, unit: str, check: str,
               status: str) -> str | None:
    """The reason a limit gives for this verdict, or None."""
    if status not in EXCUSABLE:
        return None
    for limit in limits:
        if (_version(torch) < _version(limit["below"]) and limit["check"] == check
                and fnmatch.fnmatch(unit, limit["units"])):
            return str(limit["reason"])
    return None


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("main", type=Path)
    parser.add_argument("other", type=Path)
    parser.add_argument("--limits", type=Path, default=Path(__file__).with_name("limits.toml"))
    args = parser.parse_args()
    limits = tomllib.loads(args.limits.read_text(encoding="utf-8")).get("limit", [])
    main_torch, main_rows = load(args.main)
    other_torch, other_rows = load(args.other)
    differ = excused = 0
    for key in sorted(set(main_rows) | set(other_rows)):
        before, _ = main_rows.get(key, ("-", ""))
        after, message = other_rows.get(key, ("-", ""))
        if before == after:
            continue
        reason = documented(limits, other_torch, key[0], key[1], after)
        tag = "documented limit" if reason else "DIFFERS"
        excused += reason is not None
        differ += reason is None
        print(f"{tag}\t{key[0]}\t{key[1]}\t{before} -> {after}\t{' '.join(message.split())[:200]}")
    print(f"# torch {other_torch} vs {main_torch}: {differ} undocumented difference(s), "
          f"{excused} documented limit(s), {len(set(main_rows) | set(other_rows))} checks")
    return 1 if differ else 0


if __name__ == "__main__":
    sys.exit(main())
