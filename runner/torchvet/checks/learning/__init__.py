"""learning.*: why a model that runs and gets gradients still does not learn.

One instrumented training step at init (:mod:`torchvet.checks.shared.probe`) and short
runs with the user's own optimizer and data (:mod:`torchvet.checks.shared.runs`) feed one
module per diagnostic family; each returns a :class:`~torchvet.checks.causes.findings.Finding`
that its check reports and that training.overfit and learning.progress cite as the
mechanism behind a loss that does not fall.
"""

from __future__ import annotations

from . import activations, capacity, gradient_flow, input_scale, learning_rate, output_vs_loss
from . import progress as progress

__all__ = ["activations", "capacity", "gradient_flow", "input_scale", "learning_rate",
           "output_vs_loss", "progress"]
