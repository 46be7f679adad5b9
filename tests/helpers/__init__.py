"""Shared test helpers, one home for every test module: paths, running checks in-process
on a factory, reading verdicts, running the CLI in a subprocess."""

from __future__ import annotations

import inspect
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from torchvet.checks.inline import check_inline
from torchvet.project.config import UnitConfig
from torchvet.results import CheckResult, RunReport, Status, UnitReport

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
FIXTURES = ROOT / "tests" / "fixtures"
# the budgets of training.overfit and the learning runs are safety stops (their verdicts
# are decided by step counts): room here so a loaded machine cannot turn a verdict into
# "skipped: budget". A test of a budget passes its own config.
ROOMY = UnitConfig(budgets={"training.overfit": 1800, "learning": 1800})


def vet(factory: Callable[[], Any], checks: Sequence[str] = (), *, kind: str = "model",
        seed: int = 0, config: UnitConfig | None = None) -> dict[str, CheckResult]:
    """Run ``checks`` in-process on ``factory`` (with ROOMY budgets unless ``config`` is
    given); results by check id."""
    return check_inline(factory, kind=kind, checks=checks, seed=seed, config=config or ROOMY)


def verdict(factory: Callable[[], Any], check_id: str, **kwargs: Any) -> CheckResult:
    """The result of one check; fails the test if the check did not report."""
    results = vet(factory, [check_id], **kwargs)
    assert check_id in results, f"{check_id} did not report; got {sorted(results)}"
    return results[check_id]


def assert_status(result: CheckResult, status: Status, *fragments: str) -> None:
    """``result`` has ``status`` and its message contains every fragment."""
    assert result.status is status, (
        f"{result.id}: expected {status.value}, got {result.status.value}: {result.message}\n"
        f"{result.details}"
    )
    for fragment in fragments:
        assert fragment in result.message, f"{fragment!r} not in {result.message!r}"


def line_in(path: Path, snippet: str) -> int:
    """1-based number of the first line of ``path`` that contains ``snippet``."""
    for number, text in enumerate(path.read_text().splitlines(), start=1):
        if snippet in text:
            return number
    raise AssertionError(f"{snippet!r} not in {path}")


def method_line(cls: type, name: str) -> int:
    """The line where ``cls`` defines the method ``name``."""
    return inspect.getsourcelines(vars(cls)[name])[1]


def assert_where(result: CheckResult, snippet: str, path: Path) -> None:
    """``result`` points at the line of ``path`` that contains ``snippet``."""
    expected = line_in(path, snippet)
    assert result.file and result.file.endswith(path.name), (result.file, result.line)
    assert result.line == expected, (
        f"{result.id} points at line {result.line}, expected {expected} ({snippet!r})")


def run_cli(*args: str, cwd: Path | None = None, env: dict[str, str] | None = None,
            timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """``python -m torchvet ARGS`` in a subprocess (the way users run it)."""
    environment = {**os.environ, "NO_COLOR": "1", **(env or {})}
    environment.pop("GITHUB_ACTIONS", None) if "GITHUB_ACTIONS" not in (env or {}) else None
    return subprocess.run(
        [sys.executable, "-m", "torchvet", *args],
        cwd=cwd or ROOT, env=environment, capture_output=True, text=True, timeout=timeout,
    )


def eventually(condition: Callable[[], bool], timeout: float = 30.0) -> bool:
    """Poll ``condition`` until it holds or ``timeout`` seconds pass (for state another
    process reaches on its own schedule, such as a killed process being reaped)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def restore_sigint() -> None:
    """``preexec_fn`` for a child the test interrupts: a test run started in the
    background inherits SIGINT ignored, and Python then never raises KeyboardInterrupt."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def sample_run() -> RunReport:
    """One unit with a result of every status, control characters and markup in its text
    (for reporters, which must survive any string)."""
    results = [
        CheckResult("forward.runs", Status.PASSED, "ok", duration=0.0),
        CheckResult("training.gradients", Status.FAILED,
                    "enc.weight received no gradient \x1b[31m\x00 <&> \"q\"",
                    "details\x07 line", "src/pkg/m.py", 12, 0.25),
        CheckResult("forward.determinism", Status.ERROR, "boom", "Traceback...", "src/m.py", 3),
        CheckResult("data.workers", Status.WARNED, "lambda transform", "", "src/d.py", 9),
        CheckResult("export.compile", Status.SKIPPED, "opt-in"),
        CheckResult("state.roundtrip", Status.XFAILED, "xfail (known): lists"),
        CheckResult("forward.shape", Status.XPASSED, "declared xfail but it passed"),
        CheckResult("training.overfit", Status.CANCELLED, "cancelled"),
    ]
    return RunReport([UnitReport("net", dist="pkg", target="pkg.m:make", results=results,
                                  output="print \x00 from user\n")],
                     seed=0, torch_version="2.13.0")


def broken_run(snapshotless: int = 0) -> RunReport:
    """Issue 26's mixed case, as the executor records it: ``sig`` died by a signal and
    ``code`` by an exit code while being built (one unit error each, 30 checks not
    run), ``head`` has two real failures on its layer's line; ``snapshotless`` healthy
    units each skip the regression checks for want of a snapshot."""

    def dead(name: str, cause: str, line: int) -> UnitReport:
        checks = [f"forward.c{i}" for i in range(30)]
        return UnitReport(name, file=f"src/{name}.py", line=line, results=[
            CheckResult("unit", Status.ERROR, f"the worker process {cause} while building "
                        "the unit (factory call or first forward)",
                        "last lines of the unit's output:\nloading weights", f"src/{name}.py",
                        line),
            *(CheckResult(c, Status.NOT_RUN, "not run: the unit's worker died before its "
                          "checks ran") for c in checks)], output="loading weights\n")

    head = UnitReport("head", file="src/head.py", line=2, results=[
        CheckResult("forward.runs", Status.PASSED, "ok"),
        CheckResult("training.gradients", Status.FAILED, "head.weight received no gradient",
                    "", "src/head.py", 11),
        CheckResult("training.update", Status.FAILED, "head.weight never changed",
                    "", "src/head.py", 11)])
    hint = "no snapshot: create it with `torchvet snapshot`"
    healthy = [UnitReport(f"ok{i}", file="src/ok.py", line=1, results=[
        CheckResult("forward.runs", Status.PASSED, "ok"),
        *(CheckResult(f"regression.{c}", Status.SKIPPED, hint)
          for c in ("signature", "outputs", "cost"))]) for i in range(snapshotless)]
    return RunReport([dead("sig", "was killed by signal 11 (SIGSEGV: segmentation fault "
                           "in native code)", 5),
                      dead("code", "exited with code 3", 7), head, *healthy],
                     torch_version="2.13.0", torchvet_version="0.1.0", duration=2.0)
