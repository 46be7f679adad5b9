"""One place that seeds every random number generator user code may draw from."""

from __future__ import annotations

import random
from types import ModuleType

import torch

_np: ModuleType | None
try:  # numpy is optional for torchvet, common in user code
    import numpy as _np
except ImportError:  # pragma: no cover - numpy is installed wherever torch warns without it
    _np = None


def seed_everything(seed: int) -> None:
    """Seed torch (CPU and CUDA), :mod:`random` and numpy's global generator."""
    seed = int(seed) % (2**32)
    random.seed(seed)
    torch.manual_seed(seed)
    if _np is not None:
        _np.random.seed(seed)
