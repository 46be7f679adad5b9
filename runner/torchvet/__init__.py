"""torchvet: vet PyTorch models on every pull request.

Declare zero-argument factories as entry points (``torchvet.models``,
``torchvet.datasets``); a factory returns an ``nn.Module``, a plain ``dict`` or a
:class:`torchvet.Spec`. Importing this package does not import torch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"
__all__ = ["Spec", "__version__", "check_inline"]

if TYPE_CHECKING:
    from .checks.inline import check_inline
    from .unit.spec import Spec

# Public names imported on first use: both need torch, the package itself must not.
_LAZY = {"Spec": "torchvet.unit.spec", "check_inline": "torchvet.checks.inline"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'torchvet' has no attribute {name!r}")
