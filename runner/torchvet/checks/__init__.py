"""Check implementations, one module per area; importing this registers them all."""

from . import data, export, forward, portability, state, training  # noqa: F401
