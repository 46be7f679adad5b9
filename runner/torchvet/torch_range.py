"""The torch releases torchvet supports, declared once for every side that validates a
version: the action's ``torch-version`` input, ``torchvet docker --torch`` and the
worker's start-up check. Plain data: the parent side never imports torch.

The floor is 2.1: it is the first release with ``torch.utils.flop_counter`` (the
regression checks' compute figures), ``torch.compile`` on Python 3.11 and a
memory-mapped ``torch.load``; Lightning's current release requires ``torch>=2.1`` too
(transformers 4.x requires 2.2, 5.x 2.6), so nothing current needs an older torch.
"""

from __future__ import annotations

import re

OLDEST_SUPPORTED = (2, 1)
SUPPORTED_RANGE = f"torch >= {OLDEST_SUPPORTED[0]}.{OLDEST_SUPPORTED[1]}"

_LEADING = re.compile(r"^(\d+)\.(\d+)")


def unsupported(version: str) -> str | None:
    """Why torchvet cannot run on ``version`` (e.g. ``2.0.1``, ``2.4``, ``2.13.0+cpu``),
    or None where it can (and for a string that is not a version: its own check says)."""
    found = _LEADING.match(version)
    if found is None:
        return None
    if (int(found[1]), int(found[2])) < OLDEST_SUPPORTED:
        return (f"torch {version} is older than torchvet supports ({SUPPORTED_RANGE}); "
                f"use torch {OLDEST_SUPPORTED[0]}.{OLDEST_SUPPORTED[1]} or newer")
    return None
