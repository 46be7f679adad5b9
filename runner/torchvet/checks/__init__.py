"""Checks: the catalogue (``catalogue``, no torch), the ``@check`` registry
(``registry``), one implementation module per area (``data`` and ``learning`` are
packages), the computations more than one check reads (``shared``), the explainers
that name a failure's cause (``causes``), and the entry points that run them
(``suite`` for the worker, ``inline`` in-process).

Area modules never import each other: what two areas need lives in ``shared`` or
``causes``. Importing this package does not import torch; :func:`register_all` imports
the implementations (:mod:`.suite` does, once, in the fork server).
"""

from __future__ import annotations

import importlib

AREA_MODULES = ("forward", "training", "learning", "state", "portability", "export", "data",
                "regression")


def register_all() -> None:
    """Import every implementation module so its ``@check`` functions register."""
    for name in AREA_MODULES:
        importlib.import_module(f"{__name__}.{name}")
