"""Run a corpus of tests/fixtures/corpus through torchvet and report how the catalogue did.

``python bench/corpus.py learning --seeds 0,1,2,3,4`` runs every program of the corpus
(``causes``, ``learning`` or ``healthy_patterns``) in-process under each seed and prints
a summary (buggy runs named by the diagnostic of their cause; fixed and healthy runs that
fail or warn), the per-case table and every run that was not right. ``--write PATH``
also writes it as a results file (bench/results/, with the command and the machine).
``-k GLOB`` runs only the cases whose name matches (a quick check that it runs).

The whole learning corpus under five seeds takes tens of minutes on 2 cores.
"""

from __future__ import annotations

import argparse
import fnmatch
import importlib
import sys
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "runner")]  # the corpus lives in tests/
sys.path.insert(0, str(Path(__file__).resolve().parent))  # bench/ is scripts, not a package

CORPORA = {
    "causes": "bugs people hit, each with its fixed twin: the flag must name the true cause",
    "learning": '"my model does not learn" programs with their fixed twins, and healthy '
                "models that learn slowly or look odd",
    "healthy_patterns": "models that do not train like a plain classifier (GANs, EMA "
                        "teachers, QAT, ...), each passing with no flag",
}


def summary(rows: Sequence) -> str:
    """Markdown: buggy runs named by their cause; fixed and healthy runs failing or warning."""
    buggy = [r for r in rows if not r.case.healthy]
    healthy = [r for r in rows if r.case.healthy]
    failing = [r for r in healthy if r.failures]
    warning = [r for r in healthy if r.flags and not r.failures]

    def share(part: int, whole: int) -> str:
        return f"{part}/{whole} ({100 * part / whole:.0f} %)" if whole else "0/0"

    lines = ["| runs (case × seed) | count |", "|---|---|"]
    if buggy:
        lines.append("| buggy runs flagged by the diagnostic naming their cause | "
                     f"{share(sum(r.correct for r in buggy), len(buggy))} |")
    lines += [f"| fixed and healthy runs that fail | {share(len(failing), len(healthy))} |",
              f"| fixed and healthy runs that warn | {share(len(warning), len(healthy))} |"]
    return "\n".join(lines)


def misses(rows: Sequence) -> str:
    """One line per run that was not right, with what flagged it."""
    lines = []
    for row in rows:
        if not row.correct:
            detail = "; ".join(f"{r.id}: {r.message[:200]}" for r in row.flags) or "no flag"
            lines.append(f"- `{row.case.name}` seed {row.seed}: {detail}")
    return "\n".join(lines) or "Every run was right."


def report(corpus: str, rows: Sequence, table: str) -> str:
    seeds = sorted({r.seed for r in rows})
    cases = len({r.case.name for r in rows})
    return "\n\n".join([
        f"{cases} cases ({CORPORA[corpus]}) under seeds {', '.join(map(str, seeds))}; "
        "the default catalogue, in-process (`torchvet.check_inline`).",
        summary(rows), table, "Runs that were not right:", misses(rows)])


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("corpus", choices=sorted(CORPORA))
    parser.add_argument("--seeds", default="0")
    parser.add_argument("-k", default="*", help="glob of case names (default: all)")
    parser.add_argument("--write", metavar="PATH", help="also write a results file here")
    args = parser.parse_args(argv)
    from results_md import write_results

    from tests.fixtures.corpus.harness import run_corpus, table

    module = importlib.import_module(f"tests.fixtures.corpus.{args.corpus}")
    cases = [c for c in module.CASES if fnmatch.fnmatchcase(c.name, args.k)]
    rows = run_corpus(cases, [int(s) for s in args.seeds.split(",")])
    text = report(args.corpus, rows, table(rows))
    print(text)
    if args.write:
        command = ["python", "bench/corpus.py", args.corpus, "--seeds", args.seeds,
                   *(["-k", args.k] if args.k != "*" else []), "--write", args.write]
        write_results(args.write, f"The {args.corpus.replace('_', '-')} corpus", command, text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
