"""What the learning.* area adds to a default run of bench/project (issue 15's budget).

``python bench/learning.py [--repeats 5]`` runs ``torchvet run bench/project -j 1`` with
the default catalogue and with ``--checks -learning`` in turn (interleaved, so a noisy
neighbour slows both alike), prints the medians and their ratio, and, from the JSON
report of the last default run, the learning checks' own time per model (a model under
1M parameters should get its verdicts in under 2 s). ``--write PATH`` also writes that
as a results file (bench/results/learning-cost.md, with the command and the machine).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # bench/ is scripts, not a package
from run import PROJECT, run, torchvet


def learning_seconds(report: Path) -> dict[str, float]:
    """Per unit: the summed duration of its learning.* checks."""
    data = json.loads(report.read_text())
    found = {}
    for unit in data["reports"]:
        found[unit["name"]] = sum(
            r.get("duration", 0.0) for r in unit.get("results", [])
            if r["id"].startswith("learning."))
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--write", metavar="PATH", help="also write a results file here")
    args = parser.parse_args()
    walls: dict[str, list[float]] = {"default": [], "without learning": []}
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "run.json"
        for _ in range(args.repeats):
            wall, _ = run(torchvet("run", str(PROJECT), "-j", "1", "--json", str(report)),
                          ok=(0, 1))
            walls["default"].append(wall)
            wall, _ = run(torchvet("run", str(PROJECT), "-j", "1", "--checks", "-learning"),
                          ok=(0, 1))
            walls["without learning"].append(wall)
        per_unit = learning_seconds(report)
    text = render(walls, per_unit)
    print(text)
    if args.write:
        from results_md import text_block, write_results

        write_results(args.write, "The learning area's cost on bench/project",
                      ["python", "bench/learning.py", "--repeats", str(args.repeats),
                       "--write", args.write], text_block(text))


def render(walls: dict[str, list[float]], per_unit: dict[str, float]) -> str:
    """The medians of both runs, their ratio, and the learning checks' time per unit."""
    lines = [f"{label:<20} median {statistics.median(values):6.2f} s  "
             f"(min {min(values):.2f}, max {max(values):.2f})"
             for label, values in walls.items()]
    ratio = statistics.median(walls["default"]) / statistics.median(walls["without learning"])
    lines.append(f"default / without learning: {ratio:.3f} (target <= 1.30)")
    lines.append(f"learning.* check time, last default run: {sum(per_unit.values()):.2f} s "
                 "over all units; per unit:")
    lines += [f"  {name:<24} {seconds:6.2f} s"
              for name, seconds in sorted(per_unit.items(), key=lambda kv: -kv[1])]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
