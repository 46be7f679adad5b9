"""Checks: the catalogue (``catalogue``, no torch), how a check states its verdict
(``base``), the phrasing verdicts share (``text``, no torch), and one implementation
module per area (``data`` and ``learning`` are packages; ``meta_device`` serves ``portability``).

Importing this package does not import torch; :func:`register_all` imports the
implementations (the worker does, once, in the fork server).
"""

from __future__ import annotations

import importlib

AREA_MODULES = ("forward", "training", "learning", "state", "portability", "export", "data",
                "regression")


def register_all() -> None:
    """Import every implementation module so its ``@check`` functions register."""
    for name in AREA_MODULES:
        importlib.import_module(f"{__name__}.{name}")
