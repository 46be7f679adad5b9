"""The records of the short training run: what it did to each parameter, and where it
failed.

Kept apart from :mod:`torchvet.unit.training_run` (which produces them) and
:mod:`torchvet.unit.context` (which memoises them for the checks) so that both import
them without importing each other.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..checks.base import Location

TRAIN_STEPS = 3
# the stages of one step in order, and the check that reports a failure at each
STAGE_OWNERS = {"loss": "training.loss", "backward": "training.gradients",
                "optimizer": "training.update"}


@dataclass
class LossProblem(Exception):
    """The training step produced something that is not a usable loss."""

    message: str

    def __str__(self) -> str:
        return self.message


@dataclass
class TrainingFailure:
    stage: str  # "loss" | "backward" | "optimizer"
    error: BaseException
    where: Location = None
    details: str = ""
    culprit: str = ""  # e.g. "add_() modifies the output of sigmoid() in place"


@dataclass
class TrainingTrace:
    """What 3 optimizer steps on one fixed batch did to every parameter."""

    trainable: list[str] = field(default_factory=list)
    frozen: list[str] = field(default_factory=list)
    grad_states: dict[str, list[str]] = field(default_factory=dict)
    changed: dict[str, bool] = field(default_factory=dict)
    in_optimizer: set[str] = field(default_factory=set)
    losses: list[float] = field(default_factory=list)
    steps: int = 0
    failure: TrainingFailure | None = None
