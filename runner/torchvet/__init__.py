"""torchvet: vet PyTorch models on every pull request.

Declare zero-argument factories as entry points (``torchvet.models``,
``torchvet.datasets``); a factory returns an ``nn.Module``, a plain ``dict`` or a
:class:`torchvet.Spec`. Importing this package does not import torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"
__all__ = ["Spec", "__version__"]

if TYPE_CHECKING:
    from .spec import Spec


def __getattr__(name: str) -> Any:
    if name == "Spec":
        from .spec import Spec

        return Spec
    raise AttributeError(f"module 'torchvet' has no attribute {name!r}")
