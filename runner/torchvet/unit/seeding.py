"""One place that seeds every random number generator user code may draw from, and
derives the seed of each computation from the run's ``--seed`` and what it is for."""

from __future__ import annotations

import functools
import hashlib
import random
from types import ModuleType

import torch

_np: ModuleType | None
try:  # numpy is optional for torchvet, common in user code
    import numpy as _np
except ImportError:  # pragma: no cover - numpy is installed wherever torch warns without it
    _np = None


@functools.lru_cache(maxsize=1)
def _accelerators() -> bool:
    """Whether an accelerator generator may need seeding (CUDA, XPU, MPS, MTIA)."""
    checks = (
        lambda: torch.cuda.is_available(),
        lambda: hasattr(torch, "xpu") and torch.xpu.is_available(),
        lambda: torch.backends.mps.is_available(),
        lambda: hasattr(torch, "mtia") and torch.mtia.is_available(),
    )
    for available in checks:
        try:
            if available():
                return True
        except Exception:  # a backend that cannot even say: seed it the long way
            return True
    return False


def seed_everything(seed: int) -> None:
    """Seed torch (CPU and any accelerator), :mod:`random` and numpy's global generator.

    Without an accelerator only the CPU generator is seeded: ``torch.manual_seed`` also
    queues a seed for every lazily initialised backend, each with a
    ``traceback.format_stack()`` (about 1 ms per call from a check's stack, and the
    checks seed hundreds of times per unit).
    """
    seed = int(seed) % (2**32)
    random.seed(seed)
    if _accelerators():
        torch.manual_seed(seed)
    else:
        torch.default_generator.manual_seed(seed)
    if _np is not None:
        _np.random.seed(seed)


def derived_seed(*parts: object) -> int:
    """A seed fixed by ``parts`` (the run's seed, then what it seeds): each computation
    draws its own stream, so a verdict does not depend on which checks ran before it."""
    digest = hashlib.sha256(repr(parts).encode()).digest()
    return int.from_bytes(digest[:6], "big")
