"""torchvet's benchmark: every figure and ratio of issue 5 in one run.

Measured in one run, interleaved repetition by repetition (so a noisy neighbour hurts
every row alike), each a fresh process:

- ``import torch``                     python -c "import torch"
- full catalogue -j 1 / -j 2           torchvet run bench/project -j N
- compute floor                        bench/floor.py replay (in-process seconds, torch
                                       imported once, not timed): exactly the builds,
                                       forwards, backwards, autograd.grad calls, optimizer
                                       steps and sample loads the catalogue performs,
                                       counted once per run by bench/floor.py count
- pytest seed suite                    python -m pytest (bench/project/seed_tests)
- torchvet, seed-equivalent checks     torchvet run --checks forward.shape,forward.dtype,
                                       training.update,training.loss,data.collate,data.labels
- torchvet --help / torchvet list      list on a generated project of 1000 entry points
- scaling                              10 models vs the same 10 models x 4 (-j 2)

Medians, min and max over the repetitions; ratios from the medians; a table at the end.

The real-size tier (``--tier real``, opt-in: minutes per repetition and GBs of memory)
runs bench/real/ — ResNet-50, ViT-B/16, BERT-base, GPT-2-small in plain torch — and
reports per unit the -j 1 time against its compute floor, the worker's peak memory, and
that peak above the pre-check baseline in multiples of the model's weight bytes; per
check the seconds.

    python bench/run.py                 # the full benchmark (5 repetitions, ~25 min)
    python bench/run.py --repeats 7
    python bench/run.py --quick         # 1 repetition, 3 models (what the tests run)
    python bench/run.py --tier real --repeats 3
    python bench/run.py --write bench/results/default-run.md   # also as a results file
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
PROJECT = HERE / "project"
REAL = HERE / "real"
SEED_CHECKS = ("forward.shape,forward.dtype,training.update,training.loss,data.collate,"
               "data.labels")
QUICK_MODELS = ("mlp_tiny", "lenet", "tabular")
LIST_ENTRY_POINTS = 1000
SCALE_SMALL, SCALE_FACTOR = 10, 4


def cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def environment() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GITHUB_")}
    env["NO_COLOR"] = "1"
    env["PYTHONPATH"] = os.pathsep.join(
        [str(ROOT / "runner"), *filter(None, [os.environ.get("PYTHONPATH")])])
    return env


def run(cmd: Sequence[str], *, cwd: Path = ROOT, ok: Sequence[int] = (0,)) -> tuple[float, str]:
    """Wall seconds of ``cmd`` and its stdout; exits with its output if it fails."""
    started = time.perf_counter()
    proc = subprocess.run(list(cmd), cwd=cwd, env=environment(), capture_output=True, text=True)
    wall = time.perf_counter() - started
    if proc.returncode not in ok:
        raise SystemExit(f"bench: {' '.join(cmd)} exited {proc.returncode}\n"
                         f"{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}")
    return wall, proc.stdout


def torchvet(*args: str) -> list[str]:
    return [sys.executable, "-m", "torchvet", *args]


# --------------------------------------------------------------------------- projects


def entry_points(source: Path = PROJECT) -> dict[str, dict[str, str]]:
    import tomllib

    data = tomllib.loads((source / "pyproject.toml").read_text())
    eps = data["project"]["entry-points"]
    return {"model": dict(eps["torchvet.models"]),
            "dataset": dict(eps.get("torchvet.datasets", {}))}


def write_project(root: Path, models: dict[str, str], datasets: dict[str, str],
                  source: Path = PROJECT) -> Path:
    """A project whose entry points point into ``source``/src (linked, not copied)."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "src").symlink_to(source / "src", target_is_directory=True)
    lines = ['[project]', 'name = "torchvet-bench-generated"', 'version = "0"', '',
             '[project.entry-points."torchvet.models"]']
    lines += [f'{name} = "{value}"' for name, value in models.items()]
    if datasets:
        lines += ['', '[project.entry-points."torchvet.datasets"]']
        lines += [f'{name} = "{value}"' for name, value in datasets.items()]
    (root / "pyproject.toml").write_text("\n".join(lines) + "\n")
    return root


LIST_MODULE_HEAD = '''"""Generated: {count} model factories, the shape of a timm model file."""

from __future__ import annotations

import torch
from torch import nn


class Net{index}(nn.Module):
    """A small network; the factories below configure it."""

    def __init__(self, width: int = 32, depth: int = 2, classes: int = 10) -> None:
        super().__init__()
        layers = []
        for _ in range(depth):
            layers += [nn.Linear(width, width), nn.GELU(), nn.LayerNorm(width)]
        self.body = nn.Sequential(*layers)
        self.head = nn.Linear(width, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x))
'''

LIST_FACTORY = '''

def make_{name}(pretrained: bool = False) -> dict:
    """Width {width}, depth {depth}: declared as torchvet.models entry point {name}."""
    model = Net{index}(width={width}, depth={depth})
    return {{"model": model, "inputs": lambda b: torch.randn(b, {width})}}
'''


def list_project(root: Path, count: int, per_module: int = 20) -> Path:
    """``count`` entry points over modules of ``per_module`` factories (never imported)."""
    package = root / "src" / "zoo"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    entries = []
    for m in range((count + per_module - 1) // per_module):
        names = [f"net{m:03d}_{k:02d}" for k in range(per_module)][: count - m * per_module]
        text = LIST_MODULE_HEAD.format(count=len(names), index=m)
        for k, name in enumerate(names):
            text += LIST_FACTORY.format(name=name, index=m, width=16 * (1 + k % 4),
                                        depth=1 + k % 3)
            entries.append(f'{name} = "zoo.family{m:03d}:make_{name}"')
        (package / f"family{m:03d}.py").write_text(text)
    (root / "pyproject.toml").write_text(
        '[project]\nname = "zoo"\nversion = "0"\n\n[project.entry-points."torchvet.models"]\n'
        + "\n".join(entries) + "\n")
    return root


# --------------------------------------------------------------------------- measuring


@dataclass
class Row:
    label: str
    samples: list[float] = field(default_factory=list)
    note: str = ""

    @property
    def median(self) -> float:
        return statistics.median(self.samples)

    def cells(self) -> str:
        if not self.samples:
            return f"{'-':>9} {'-':>9} {'-':>9}"
        return (f"{self.median:9.2f} {min(self.samples):9.2f} {max(self.samples):9.2f}")


@dataclass
class Bench:
    quick: bool
    repeats: int
    scratch: Path
    rows: dict[str, Row] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)

    def row(self, key: str, label: str, note: str = "") -> Row:
        if key not in self.rows:
            self.rows[key] = Row(label, note=note)
        return self.rows[key]

    def add(self, key: str, label: str, seconds: float, note: str = "") -> None:
        self.row(key, label, note).samples.append(seconds)


def check_no_torch(args: Sequence[str]) -> bool:
    code = ("import sys\nfrom torchvet.cli import main\n"
            f"rc = main({list(args)!r})\n"
            "sys.stdout.flush()\nsys.exit(3 if 'torch' in sys.modules else rc)\n")
    proc = subprocess.run([sys.executable, "-c", code], env=environment(), capture_output=True,
                          text=True)
    return proc.returncode == 0


def check_durations(report: Path) -> dict[str, float]:
    """Seconds per check id summed over the units of a --json report."""
    data = json.loads(report.read_text())
    totals: dict[str, float] = {}
    for unit in data["reports"]:
        for result in unit["results"]:
            totals[result["id"]] = totals.get(result["id"], 0.0) + result["duration"]
    return totals


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5, help="repetitions (default 5)")
    parser.add_argument("--quick", action="store_true",
                        help="1 repetition on 3 models: checks that the benchmark runs")
    parser.add_argument("--json", dest="json_path", help="also write the figures here")
    parser.add_argument("--write", metavar="PATH",
                        help="also write the table as a results file (bench/results/)")
    parser.add_argument("--tier", choices=("small", "real"), default="small",
                        help="small: 20 small models and every figure (default); real: "
                             "the real-size models of bench/real/")
    parser.add_argument("--real-project", type=Path, default=REAL,
                        help="the project the real tier measures (default bench/real)")
    parser.add_argument("-k", dest="only", action="append", default=[],
                        help="real tier: only this model (repeatable)")
    args = parser.parse_args(argv)
    repeats = 1 if args.quick else args.repeats
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="torchvet-bench-") as tmp:
        bench = Bench(args.quick, repeats, Path(tmp))
        if args.tier == "real":
            measure_real(bench, args.real_project.resolve(), args.only)
            table = render_real(bench, time.perf_counter() - started)
        else:
            measure(bench)
            table = render(bench, time.perf_counter() - started)
    print(table)
    if args.json_path:
        Path(args.json_path).write_text(json.dumps(
            {k: {"label": r.label, "samples": r.samples} for k, r in bench.rows.items()}
            | {"extra": bench.extra}, indent=2))
    if args.write:
        from results_md import text_block, write_results

        title = ("The real-size tier" if args.tier == "real"
                 else "The benchmark on bench/project")
        command = ["python", "bench/run.py", *(argv if argv is not None else sys.argv[1:])]
        write_results(args.write, title, command, text_block(table))
    return 0


def measure(bench: Bench) -> None:
    eps = entry_points()
    quick = bench.quick
    models = {n: v for n, v in eps["model"].items() if not quick or n in QUICK_MODELS}
    datasets = {} if quick else eps["dataset"]
    project = write_project(bench.scratch / "bench", models, datasets)
    names = sorted(models)
    small = names[::2][:SCALE_SMALL] if not quick else names[:2]
    small_eps = {n: models[n] for n in small}
    scale_small = write_project(bench.scratch / "scale-small", small_eps, {})
    scale_mid = write_project(bench.scratch / "scale-mid", {
        f"{n}_copy{k}": v for k in range(SCALE_FACTOR // 2) for n, v in small_eps.items()}, {})
    scale_big = write_project(bench.scratch / "scale-big", {
        f"{n}_copy{k}": v for k in range(SCALE_FACTOR) for n, v in small_eps.items()}, {})
    zoo = list_project(bench.scratch / "zoo", LIST_ENTRY_POINTS)
    events = bench.scratch / "events.json"
    pytest_filter = ["-k", " or ".join(QUICK_MODELS)] if quick else []
    bench.extra.update(models=len(models), datasets=len(datasets), scale_small=small,
                       cores=cores())

    log(f"counting the catalogue's tensor work on {len(models)} model(s), "
        f"{len(datasets)} dataset(s) ...")
    run([sys.executable, str(HERE / "floor.py"), "count", str(project), str(events)])
    recorded = json.loads(events.read_text())
    bench.extra["floor_counts"] = {n: u["counts"] for n, u in recorded.items()}
    bench.extra["floor_not_passed"] = {n: u["not_passed"] for n, u in recorded.items()
                                       if u["not_passed"]}
    threads = str(cores())

    def floor() -> float:
        _, out = run([sys.executable, str(HERE / "floor.py"), "replay", str(project),
                      str(events), "--threads", threads])
        return float(json.loads(out.strip().splitlines()[-1])["seconds"])

    def lazy_imports() -> float:
        code = ("import torch, time\nt = time.perf_counter()\nimport torch._dynamo\n"
                "import torch.fx.experimental.symbolic_shapes\n"
                "print(time.perf_counter() - t)\n")
        _, out = run([sys.executable, "-c", code])
        return float(out.strip())

    reports = bench.scratch / "reports"
    reports.mkdir()
    steps: list[tuple[str, str, Callable[[int], float]]] = [
        ("torch", "import torch (fresh interpreter)",
         lambda i: run([sys.executable, "-c", "import torch"])[0]),
        ("lazy", "  + torch._dynamo, symbolic_shapes (lazy)", lambda i: lazy_imports()),
        ("floor", "compute floor (in-process, torch imported)", lambda i: floor()),
        ("j1", "torchvet run, default catalogue, -j 1",
         lambda i: run(torchvet("run", str(project), "-j", "1", "--json",
                                str(reports / f"j1-{i}.json")))[0]),
        ("j2", "torchvet run, default catalogue, -j 2",
         lambda i: run(torchvet("run", str(project), "-j", "2"))[0]),
        ("pytest", "pytest seed suite (1 process)",
         lambda i: run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                        *pytest_filter], cwd=PROJECT)[0]),
        ("seed1", "torchvet run --checks <seed-equivalent>, -j 1",
         lambda i: run(torchvet("run", str(project), "-j", "1", "--checks", SEED_CHECKS))[0]),
        ("seed2", "torchvet run --checks <seed-equivalent>, -j 2",
         lambda i: run(torchvet("run", str(project), "-j", "2", "--checks", SEED_CHECKS))[0]),
        ("help", "torchvet --help", lambda i: run(torchvet("--help"))[0]),
        ("list", f"torchvet list ({LIST_ENTRY_POINTS} entry points)",
         lambda i: run(torchvet("list", str(zoo)))[0]),
        ("s_small", f"scaling: {len(small)} models, -j 2",
         lambda i: run(torchvet("run", str(scale_small), "-j", "2"))[0]),
        ("s_mid", f"scaling: {SCALE_FACTOR // 2 * len(small)} models, -j 2",
         lambda i: run(torchvet("run", str(scale_mid), "-j", "2"))[0]),
        ("s_big", f"scaling: {SCALE_FACTOR * len(small)} models, -j 2",
         lambda i: run(torchvet("run", str(scale_big), "-j", "2"))[0]),
    ]
    for i in range(bench.repeats):
        for key, label, fn in steps:
            seconds = fn(i)
            bench.add(key, label, seconds)
            log(f"[{i + 1}/{bench.repeats}] {label}: {seconds:.2f} s")
    bench.extra["help_no_torch"] = check_no_torch(["--help"])
    bench.extra["list_no_torch"] = check_no_torch(["list", str(zoo)])
    per_check: dict[str, list[float]] = {}
    for report in sorted(reports.glob("j1-*.json")):
        for check_id, seconds in check_durations(report).items():
            per_check.setdefault(check_id, []).append(seconds)
    bench.extra["j1_check_seconds"] = {k: statistics.median(v) for k, v in per_check.items()}


def log(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def render(bench: Bench, elapsed: float) -> str:
    r = bench.rows
    x = bench.extra
    lines = [
        f"torchvet benchmark · {x['models']} model(s), {x['datasets']} dataset(s) · "
        f"{bench.repeats} repetition(s) · {x['cores']} core(s) · {platform.machine()} · "
        f"Python {platform.python_version()} · {elapsed / 60:.1f} min",
        "",
        f"{'measurement':<50} {'median s':>9} {'min':>9} {'max':>9}",
        "-" * 80,
    ]
    lines += [f"{row.label:<50} {row.cells()}" for row in r.values()]
    m = {k: v.median for k, v in r.items()}
    floor_plus = m["floor"] + m["torch"]
    scale = m["s_big"] / m["s_small"]
    fixed = (SCALE_FACTOR * m["s_small"] - m["s_big"]) / (SCALE_FACTOR - 1)
    per_model = (m["s_big"] - m["s_small"]) / ((SCALE_FACTOR - 1) * len(x["scale_small"]))
    mid_models = SCALE_FACTOR // 2 * len(x["scale_small"])
    upper = (m["s_big"] - m["s_mid"]) / (SCALE_FACTOR * len(x["scale_small"]) - mid_models)
    lower = (m["s_mid"] - m["s_small"]) / (mid_models - len(x["scale_small"]))
    linearity = upper / lower if lower > 0 else float("nan")
    checks = x["j1_check_seconds"]
    workers = checks.get("data.workers", 0.0)
    ratios = [
        ("-j 1 / (floor + import torch)", m["j1"] / floor_plus, "<= 1.25",
         m["j1"] / floor_plus <= 1.25),
        ("  same, data.workers' time taken out of -j 1", (m["j1"] - workers) / floor_plus,
         "(info)", None),
        ("torchvet seed-equivalent -j 1 / pytest suite", m["seed1"] / m["pytest"], "<= 1.0",
         m["seed1"] / m["pytest"] <= 1.0),
        ("torchvet seed-equivalent -j 2 / pytest suite", m["seed2"] / m["pytest"], "(info)",
         None),
        ("speed-up -j 1 / -j 2", m["j1"] / m["j2"], ">= 1.6", m["j1"] / m["j2"] >= 1.6),
        ("torchvet --help (s), torch not imported", m["help"], "< 0.5",
         m["help"] < 0.5 and x["help_no_torch"]),
        (f"torchvet list, {LIST_ENTRY_POINTS} entry points (s), torch not imported",
         m["list"], "< 0.5", m["list"] < 0.5 and x["list_no_torch"]),
        (f"scaling {SCALE_FACTOR * len(x['scale_small'])} / {len(x['scale_small'])} models",
         scale, "4 +-15%", abs(scale / SCALE_FACTOR - 1) <= 0.15),
        ("  per-model cost 20->40 / 10->20 models (linear: 1.0)", linearity, "(info)", None),
    ]
    lines += ["", f"{'ratio (from the medians)':<58} {'value':>7}  {'target':<9} verdict",
              "-" * 86]
    for label, value, target, ok in ratios:
        verdict = "" if ok is None else ("met" if ok else "MISSED")
        lines.append(f"{label:<58} {value:7.2f}  {target:<9} {verdict}")
    top = sorted(checks.items(), key=lambda kv: -kv[1])[:6]
    lines += [
        "",
        f"floor + import torch = {floor_plus:.2f} s; scaling fit: {fixed:.2f} s fixed + "
        f"{per_model:.2f} s per model at -j 2",
        "-j 1 seconds by check (median, summed over units): "
        + ", ".join(f"{k} {v:.2f}" for k, v in top),
        f"scaling models: {', '.join(x['scale_small'])}",
        "floor counts per unit (build/forward/backward/grad/step/sample): "
        + "; ".join(f"{n} {_counts(c)}" for n, c in x["floor_counts"].items()),
    ]
    if x["floor_not_passed"]:
        lines.append(f"WARNING: checks that did not pass while counting: {x['floor_not_passed']}")
    return "\n".join(lines)


# --------------------------------------------------------------------------- real sizes


def measure_real(bench: Bench, source: Path, only: Sequence[str]) -> None:
    models = {n: v for n, v in entry_points(source)["model"].items() if not only or n in only}
    project = write_project(bench.scratch / "real", models, {}, source)
    events = bench.scratch / "events.json"
    log(f"counting the catalogue's tensor work and memory on {len(models)} model(s) ...")
    run([sys.executable, str(HERE / "floor.py"), "count", str(project), str(events)])
    recorded = json.loads(events.read_text())
    bench.extra.update(models=len(models), cores=cores(), units={}, checks={},
                       floor_not_passed={n: u["not_passed"] for n, u in recorded.items()
                                         if u["not_passed"]},
                       memory={n: u["memory"] for n, u in recorded.items()})
    reports = bench.scratch / "reports"
    reports.mkdir()
    for i in range(bench.repeats):
        seconds = run([sys.executable, "-c", "import torch"])[0]
        bench.add("torch", "import torch (fresh interpreter)", seconds)
        _, out = run([sys.executable, str(HERE / "floor.py"), "replay", str(project),
                      str(events), "--threads", str(cores())])
        floor = json.loads(out.strip().splitlines()[-1])
        bench.add("floor", "compute floor (in-process, torch imported)", floor["seconds"])
        report = reports / f"j1-{i}.json"
        seconds = run(torchvet("run", str(project), "-j", "1", "--json", str(report)))[0]
        bench.add("j1", "torchvet run, default catalogue, -j 1", seconds)
        data = json.loads(report.read_text())
        for unit in data["reports"]:
            row = bench.extra["units"].setdefault(unit["name"], {
                "floor": [], "seconds": [], "peak": []})
            row["floor"].append(floor["units"][unit["name"]])
            row["seconds"].append(unit["duration"])
            row["peak"].append(unit["peak_memory"])
            for result in unit["results"]:
                cell = bench.extra["checks"].setdefault(result["id"], {})
                cell.setdefault(unit["name"], []).append(result["duration"])
        log(f"[{i + 1}/{bench.repeats}] -j 1 {bench.rows['j1'].samples[-1]:.1f} s, floor "
            f"{floor['seconds']:.1f} s")


def render_real(bench: Bench, elapsed: float) -> str:
    x = bench.extra
    m = {k: v.median for k, v in bench.rows.items()}
    gib = float(1 << 30)
    lines = [
        f"torchvet benchmark, real sizes · {x['models']} model(s) · {bench.repeats} "
        f"repetition(s) · {x['cores']} core(s) · {platform.machine()} · Python "
        f"{platform.python_version()} · {elapsed / 60:.1f} min",
        "",
        f"{'measurement':<50} {'median s':>9} {'min':>9} {'max':>9}",
        "-" * 80,
    ]
    lines += [f"{row.label:<50} {row.cells()}" for row in bench.rows.values()]
    ratio = m["j1"] / (m["floor"] + m["torch"])
    lines += ["", f"{'-j 1 / (floor + import torch)':<50} {ratio:9.2f}  target <= 1.5  "
              f"{'met' if ratio <= 1.5 else 'MISSED'}", "",
              f"{'unit':<14} {'weights':>9} {'unit s':>8} {'floor s':>8} {'ratio':>6} "
              f"{'peak':>9} {'above baseline':>15}",
              "-" * 75]
    for name, row in x["units"].items():
        mem = x["memory"].get(name, {})
        weights = mem.get("weights", 0)
        above = max(mem.get("peaks", {}).values(), default=0) - mem.get("baseline", 0)
        unit_s, floor_s = statistics.median(row["seconds"]), statistics.median(row["floor"])
        times_w = f"{above / weights:.2f} x W" if weights else "-"
        lines.append(f"{name:<14} {weights / gib:7.2f} GB {unit_s:8.1f} {floor_s:8.1f} "
                     f"{unit_s / floor_s:6.2f} {statistics.median(row['peak']) / gib:6.2f} GB "
                     f"{times_w:>15}")
    names = list(x["units"])
    lines += ["", "seconds per check at -j 1 (median) and the peak above the baseline (x W, "
              "from the count run):", f"{'check':<28}" + "".join(f" {n[:14]:>14}" for n in names),
              "-" * (28 + 15 * len(names))]
    for check_id, cells in x["checks"].items():
        row = f"{check_id:<28}"
        for name in names:
            mem = x["memory"].get(name, {})
            peak = mem.get("peaks", {}).get(check_id, 0)
            weights = mem.get("weights", 0) or 1
            seconds = statistics.median(cells.get(name, [0.0]))
            # no peak recorded: the check never raised the worker's resident memory
            shown = f"{(peak - mem.get('baseline', 0)) / weights:5.2f}W" if peak else "    —"
            row += f" {seconds:6.1f}s {shown}"
        lines.append(row)
    lines += ["", "peak: the worker's own resident memory at its highest (beyond what it shares "
              "with the fork server); above baseline: that peak less the memory held once the "
              "model is built, in multiples of its weight bytes W"]
    if x["floor_not_passed"]:
        lines.append(f"WARNING: checks that did not pass while counting: {x['floor_not_passed']}")
    return "\n".join(lines)


def _counts(c: dict[str, int]) -> str:
    return "/".join(str(c.get(k, 0)) for k in ("build", "forward", "backward", "grad", "step",
                                                "sample"))


if __name__ == "__main__":
    sys.exit(main())
