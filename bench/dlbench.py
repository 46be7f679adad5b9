"""Run the DeepLocalize development half (``../shared/dlbench-dev``) and tabulate it.

``python bench/dlbench.py`` runs ``torchvet run`` on the benchmark project (its
``pyproject.toml`` declares one ``<id>_buggy`` / ``<id>_fixed`` factory pair per real
Keras bug, ported to PyTorch) with its sources on ``PYTHONPATH``, then prints per
category how many buggy programs were flagged (a check failed or warned) and how many
fixed programs failed or warned, followed by one row per pair with the checks that
flagged it. ``--json FILE`` reads an existing ``torchvet run --json`` report instead of
running; ``--write PATH`` also writes the table as a results file (bench/results/).

The benchmark is not part of the repository; without it the harness says so and exits 2.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))  # bench/ is scripts, not a package

from results_md import write_results  # noqa: E402

DEFAULT = ROOT.parent / "shared" / "dlbench-dev"
FLAGS = ("failed", "warned")


def load_manifest(bench: Path) -> dict[str, dict[str, Any]]:
    sys.path.insert(0, str(ROOT / "runner"))
    from torchvet.project.tomlcompat import load_toml
    return {k: v for k, v in load_toml(bench / "manifest.toml").items() if isinstance(v, dict)}


def run_torchvet(bench: Path, jobs: int) -> dict[str, Any]:
    """``torchvet run`` on the benchmark; the parsed JSON report."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "runner"), str(bench / "src"),
                                         env.get("PYTHONPATH", "")])
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "report.json"
        subprocess.run([sys.executable, "-m", "torchvet", "run", str(bench), "-j", str(jobs),
                        "--json", str(out)], env=env, check=False)
        return json.loads(out.read_text(encoding="utf-8"))


def flags_by_model(report: dict[str, Any]) -> dict[str, dict[str, list[str]]]:
    """model name -> {"failed": [check ids], "warned": [check ids]}."""
    found: dict[str, dict[str, list[str]]] = {}
    for unit in report.get("reports", []):
        checks = unit.get("results", [])
        flags: dict[str, list[str]] = {s: [] for s in FLAGS}
        for result in checks:
            status = str(result.get("status", "")).lower()
            if status in flags:
                flags[status].append(str(result.get("id", "?")))
        found[str(unit.get("name"))] = flags
    return found


def table(manifest: dict[str, dict[str, Any]], flags: dict[str, dict[str, list[str]]]) -> str:
    """Markdown: the per-category summary, then one row per pair."""
    categories: dict[str, list[int]] = {}
    rows = ["| pair | category | buggy | fixed |", "|---|---|---|---|"]
    empty: dict[str, list[str]] = {s: [] for s in FLAGS}
    for pid, entry in sorted(manifest.items()):
        buggy, fixed = flags.get(f"{pid}_buggy", empty), flags.get(f"{pid}_fixed", empty)
        counts = categories.setdefault(str(entry.get("category", "?")), [0, 0, 0, 0])
        counts[0] += 1
        counts[1] += bool(buggy["failed"] or buggy["warned"])
        counts[2] += bool(fixed["failed"])
        counts[3] += bool(fixed["warned"] and not fixed["failed"])
        rows.append(f"| {pid} | {entry.get('category', '?')} | {_cell(buggy)} | "
                    f"{_cell(fixed)} |")
    total = [sum(c[i] for c in categories.values()) for i in range(4)]
    head = ["| category | pairs | buggy flagged | fixed failing | fixed only warning |",
            "|---|---|---|---|---|"]
    head += [f"| {name} | {c[0]} | {c[1]} | {c[2]} | {c[3]} |"
             for name, c in sorted(categories.items())]
    head.append(f"| **all** | {total[0]} | **{total[1]}/{total[0]}** | {total[2]} | "
                f"{total[3]} |")
    return "\n".join([*head, "", *rows])


def _cell(flags: dict[str, list[str]]) -> str:
    parts = [f"{s}: {', '.join(sorted(set(flags[s])))}" for s in FLAGS if flags[s]]
    return "; ".join(parts) or "clean"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bench", type=Path, default=DEFAULT, help="the dlbench-dev folder")
    parser.add_argument("--json", type=Path, help="read this torchvet JSON report, no run")
    parser.add_argument("-j", "--jobs", type=int, default=1)
    parser.add_argument("--write", type=Path, help="also write the table as a results file")
    args = parser.parse_args(argv)
    if not (args.bench / "manifest.toml").is_file():
        print(f"no benchmark at {args.bench} (manifest.toml missing)", file=sys.stderr)
        return 2
    report = (json.loads(args.json.read_text(encoding="utf-8")) if args.json
              else run_torchvet(args.bench, args.jobs))
    body = table(load_manifest(args.bench), flags_by_model(report))
    print(body)
    if args.write:
        command = ["python", "bench/dlbench.py", "--write", str(args.write)]
        if args.jobs != 1:
            command += ["-j", str(args.jobs)]
        write_results(args.write, "DeepLocalize development half", command, body,
                      notes="A buggy program is flagged when a check fails or warns on it; "
                            "a fixed program must not fail, and a warning there is false.")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
