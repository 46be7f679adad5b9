"""The one record of run options, shared by ``torchvet run``, the action's inputs and
``torchvet docker``'s containers, and the choices of ``--fail-on`` and ``--device``.

The command line fills :class:`RunOptions` from its flags, the action from its
``INPUT_*`` variables (:mod:`torchvet.action.inputs` maps each input to a field), and
``torchvet docker`` hands it to every container as those inputs. A ``None`` (``jobs``:
0) is "not given": the project's ``[tool.torchvet]`` value, else the default, decided
where the project is read (:func:`torchvet.session.settle`). Plain data: it imports
nothing of the package but the baselines' record type.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .regression.store import Baseline


class Choice(str, enum.Enum):
    """A closed set of option values that reads, prints and compares as its text."""

    def __str__(self) -> str:
        return str(self.value)

    def __format__(self, spec: str) -> str:
        return format(str(self.value), spec)

    @classmethod
    def values(cls) -> tuple[str, ...]:
        """The spellings, in declaration order (click's choices, the inputs' check)."""
        return tuple(str(member.value) for member in cls)


class FailOn(Choice):
    """What makes the exit code 1: a failure or error, also a warning, or nothing."""

    FAILURE = "failure"
    WARNING = "warning"
    NEVER = "never"


class Device(Choice):
    """Where the checks run; ``auto`` picks CUDA when the worker finds it."""

    CPU = "cpu"
    CUDA = "cuda"
    AUTO = "auto"


@dataclass
class RunOptions:
    """What one run checks, how, and which reports it writes."""

    # what to check
    checks: tuple[str, ...] = ()
    models: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    shard: str | None = None  # "i/n"
    changed_since: str | None = None  # a git ref
    # how (None: the project's value, else the default)
    seed: int | None = None
    fail_on: FailOn | None = None
    timeout: float | None = None  # per unit, seconds
    jobs: int = 0  # units at once (0: the project's, else the cores)
    device: Device = Device.CPU
    # reports
    junit: str | None = None
    json_path: str | None = None
    # this process only
    capture: bool = True
    github: bool = False  # GitHub Actions: annotations, job summary, step outputs
    full_trace: bool = False  # keep torchvet's frames in verdict tracebacks
    baselines: dict[tuple[str, str], Baseline] | None = None  # what regression.* compares with

    @property
    def run_seed(self) -> int:
        """The seed in effect (0 when neither the options nor the project set one)."""
        return self.seed if self.seed is not None else 0

    @property
    def run_fail_on(self) -> FailOn:
        """The fail-on in effect (``failure`` when nobody set one)."""
        return self.fail_on or FailOn.FAILURE
