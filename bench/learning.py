"""What the learning.* area adds to a default run of bench/project (issue 15's budget).

``python bench/learning.py [--repeats 5]`` runs ``torchvet run bench/project -j 1`` with
the default catalogue and with ``--checks -learning`` in turn (interleaved, so a noisy
neighbour slows both alike), prints the medians and their ratio, and, from the JSON
report of the last default run, the learning checks' own time per model (a model under
1M parameters should get its verdicts in under 2 s).
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
    for label, values in walls.items():
        print(f"{label:<20} median {statistics.median(values):6.2f} s  "
              f"(min {min(values):.2f}, max {max(values):.2f})")
    ratio = statistics.median(walls["default"]) / statistics.median(walls["without learning"])
    print(f"default / without learning: {ratio:.3f} (target <= 1.30)")
    print("learning.* check time per unit, last default run:")
    for name, seconds in sorted(per_unit.items(), key=lambda kv: -kv[1]):
        print(f"  {name:<24} {seconds:6.2f} s")


if __name__ == "__main__":
    main()
