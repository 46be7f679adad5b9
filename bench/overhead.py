"""Per-model overhead of worker isolation: what a unit costs beyond its checks.

Builds a throw-away project with N entry points to one tiny model, runs
``torchvet run --checks forward.runs -j 1`` for N=1 and N=1+K, and reports medians over
several repetitions of

- marginal: (T(1+K) - T(1)) / K, the wall time one more model adds (fork, import of the
  user module, factory call, result streaming, the check itself);
- overhead: the same minus the checks' own reported durations.

    python bench/overhead.py [--models 20] [--repeats 5] [--write PATH]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

MODULE = '''\
from torch import nn


def make():
    return nn.Sequential(nn.Linear(8, 8), nn.ReLU(), nn.Linear(8, 2))
'''


def project(root: Path, count: int) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "tinypkg").mkdir(exist_ok=True)
    (root / "tinypkg" / "__init__.py").write_text("")
    (root / "tinypkg" / "m.py").write_text(MODULE)
    entries = "\n".join(f'm{i:03d} = "tinypkg.m:make"' for i in range(count))
    (root / "pyproject.toml").write_text(
        f'[project]\nname = "tiny"\nversion = "0"\n\n'
        f'[project.entry-points."torchvet.models"]\n{entries}\n'
    )
    return root


def timed_run(root: Path) -> tuple[float, float]:
    """(wall seconds, summed check durations)."""
    report = root / "report.json"
    started = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "torchvet", "run", str(root), "--checks", "forward.runs",
         "-j", "1", "--json", str(report)],
        capture_output=True, text=True,
    )
    wall = time.perf_counter() - started
    if proc.returncode != 0:
        raise SystemExit(f"torchvet run failed:\n{proc.stdout}\n{proc.stderr}")
    data = json.loads(report.read_text())
    checks = sum(r["duration"] for u in data["reports"] for r in u["results"])
    return wall, checks


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=int, default=20, help="extra models K")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--write", metavar="PATH", help="also write a results file here")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        one = project(Path(scratch) / "one", 1)
        many = project(Path(scratch) / "many", 1 + args.models)
        marginal, overhead = [], []
        for _ in range(args.repeats):
            t1, c1 = timed_run(one)
            tn, cn = timed_run(many)
            marginal.append((tn - t1) / args.models)
            overhead.append(((tn - cn) - (t1 - c1)) / args.models)
    text = (f"per-model marginal wall time: median {statistics.median(marginal) * 1000:.0f} ms "
            f"(min {min(marginal) * 1000:.0f}, max {max(marginal) * 1000:.0f}) over "
            f"{args.repeats} runs of 1 vs {1 + args.models} models, -j 1\n"
            f"per-model overhead beyond its checks: median "
            f"{statistics.median(overhead) * 1000:.0f} ms (min {min(overhead) * 1000:.0f}, "
            f"max {max(overhead) * 1000:.0f})")
    print(text)
    if args.write:
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        from results_md import text_block, write_results

        write_results(args.write, "Per-model cost of process isolation",
                      ["python", "bench/overhead.py", "--models", str(args.models),
                       "--repeats", str(args.repeats), "--write", args.write],
                      text_block(text))


if __name__ == "__main__":
    main()
