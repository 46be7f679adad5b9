"""Run checks in the current process on a factory you hold: for your own pytest suite
and for torchvet's tests. The CLI uses isolated workers instead; the verdicts are the
same because both go through :class:`torchvet.unit.worker.UnitRun` with the same suite.

>>> from torchvet import check_inline
>>> results = check_inline(lambda: {"model": MyNet(), "inputs": torch.randn(2, 8)})
>>> assert results["training.gradients"].status.value == "passed"
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from ..engine import protocol
from ..engine.jobs import Job
from ..project.config import UnitConfig
from ..project.discovery import Factory
from ..results import CheckResult
from ..unit.worker import UnitRun
from .suite import SUITE


def check_inline(
    factory: Callable[[], Any],
    *,
    kind: str = "model",
    name: str | None = None,
    checks: Sequence[str] = (),
    seed: int = 0,
    device: str = "cpu",
    config: UnitConfig | None = None,
    project_dirs: Sequence[str] | None = None,
    full_trace: bool = False,
) -> dict[str, CheckResult]:
    """Check what ``factory()`` returns; results keyed by check id (``spec`` holds spec
    warnings)."""
    source = _source_of(factory)
    root = Path(source[0]).parent if source else Path.cwd()
    record = Factory(
        name=name or str(getattr(factory, "__name__", "inline")),
        kind=kind,
        dist="",
        value=f"{getattr(factory, '__module__', '?')}:{getattr(factory, '__qualname__', '?')}",
        file=source[0] if source else None,
        line=source[1] if source else None,
    )
    dirs = tuple(project_dirs) if project_dirs is not None else (str(root),)
    job = Job(
        factory=record,
        config=config or UnitConfig(),
        seed=seed,
        device=device,
        checks=tuple(checks),
        project_dirs=dirs,
        report_root=dirs[0] if dirs else str(root),
        cwd=str(root),
        full_trace=full_trace,
    )
    results: dict[str, CheckResult] = {}

    def collect(message: protocol.Message) -> None:
        if isinstance(message, protocol.Finished):
            results[message.result.id] = message.result

    UnitRun(job, collect, SUITE, factory_fn=factory).run()
    return results


def _source_of(obj: Any) -> tuple[str, int] | None:
    try:
        file = inspect.getsourcefile(obj)
        _, line = inspect.getsourcelines(obj)
    except (OSError, TypeError):
        return None
    return (file, line) if file else None
