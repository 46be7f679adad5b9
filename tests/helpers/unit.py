"""A worker-side context built in the test process, as the worker builds it, for tests
that read the context's computations directly (the copies, the training run)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from torchvet.project.config import UnitConfig
from torchvet.project.discovery import Factory
from torchvet.unit.context import CheckContext
from torchvet.unit.locate import Locator
from torchvet.unit.seeding import derived_seed, seed_everything
from torchvet.unit.spec import normalize_model

ROOT = Path(__file__).resolve().parents[2]


def make_context(factory: Callable[[], Any], seed: int = 0) -> CheckContext:
    """The context of the unit ``factory()`` builds: seeded like the worker, with the
    worker's rebuild (seeded apart unless given the original's seed)."""
    seed_everything(seed)
    spec = normalize_model(factory(), "net", UnitConfig(), seed)
    record = Factory(name="net", kind="model", dist="", value="tests:net",
                     file=str(Path(__file__)), line=1)

    def build(build_seed: int | None = None) -> Any:
        seed_everything(derived_seed(seed, "rebuild") if build_seed is None else build_seed)
        return factory()

    return CheckContext(record, seed, "cpu", Locator([ROOT / "tests"], ROOT), build, spec)
