"""The records of the short training run: what it did to each parameter, and where it
failed.

Kept apart from :mod:`torchvet.unit.training_run` (which produces them) and
:mod:`torchvet.unit.context` (which memoises them for the checks) so that both import
them without importing each other.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..verdict import Location

TRAIN_STEPS = 3
# An optimizer that moved nothing in TRAIN_STEPS steps may accumulate gradients over
# several calls (Lightning's accumulate_grad_batches, DeepSpeed): it gets up to this many.
ACCUMULATION_STEPS = 8
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
    """What a few optimizer steps on one fixed batch did to every parameter, and who
    did it: ``optimizer_moved`` changed inside ``optimizer.step()``, ``self_moved``
    inside the loss/step and its backward (the model's own non-gradient updates: EMA
    targets, ``AveragedModel.update_parameters``, data-dependent init)."""

    trainable: list[str] = field(default_factory=list)
    frozen: list[str] = field(default_factory=list)
    grad_states: dict[str, list[str]] = field(default_factory=dict)
    optimizer_moved: set[str] = field(default_factory=set)
    self_moved: set[str] = field(default_factory=set)
    in_optimizer: set[str] = field(default_factory=set)
    losses: list[float] = field(default_factory=list)
    steps: int = 0
    failure: TrainingFailure | None = None

    @property
    def changed(self) -> dict[str, bool]:
        """Whether each parameter changed at all during the run."""
        moved = self.optimizer_moved | self.self_moved
        return {n: n in moved for n in [*self.trainable, *self.frozen]}

    def usable_gradient(self, name: str) -> bool:
        return "ok" in self.grad_states.get(name, [])

    def moved_by_model_only(self, name: str) -> bool:
        """Changed by the model's own code, never by the optimizer, with no usable
        gradient: an EMA / averaged copy, not a parameter that trains."""
        return (name in self.self_moved and name not in self.optimizer_moved
                and not self.usable_gradient(name))
