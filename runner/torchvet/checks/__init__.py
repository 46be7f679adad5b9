"""Check implementations, one module per area; importing this registers them all."""

from . import data, forward, training  # noqa: F401
