"""What a check sees: the normalised spec, the pristine model, and a memo.

Expensive work several checks need is computed once per unit through :meth:`memo` (the
eval forward pass here; the training run, the probes and the scans in
:mod:`torchvet.checks.shared`), seeded on its own and from the pristine model's state (see
:mod:`torchvet.unit.isolation`) so that a verdict does not depend on which checks ran
before it. A memoised computation that raised is re-raised as the original
exception to the first check that asks and as :class:`DependencyFailed` (a skip naming
the check that owns the failure) to the others.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import torch
from torch import nn

from ..project.discovery import Factory
from ..regression.store import Baseline
from ..verdict import DependencyFailed, Location, Skip
from .budget import BudgetExceeded, budget_for
from .data_batches import DataSpec
from .inputs import Inputs, auto_target
from .isolation import StateGuard, bound_to, copy_model, observe_in_train_mode_only
from .locate import Locator
from .losses import surrogate_loss
from .memory_plan import MemoryPlan
from .pytree import primary_leaf
from .seeding import derived_seed, seed_everything
from .spec import ModelSpec
from .text import first_line, one_line

T = TypeVar("T")

CROSS_BATCH_ATOL = 1e-5
CROSS_BATCH_RTOL = 1e-4


class CheckContext:
    """Shared state for the checks of one unit (a model, or a dataset on its own)."""

    def __init__(
        self,
        factory: Factory,
        seed: int,
        device: str,
        locator: Locator,
        build: Callable[..., Any],
        spec: ModelSpec | None = None,
        data: DataSpec | None = None,
        budgets: Mapping[str, float] | None = None,
        baseline: Baseline | None = None,
        default_budgets: Mapping[str, float] | None = None,
    ) -> None:
        self.factory = factory
        self.seed = seed
        self.device = torch.device(device)
        self.locator = locator
        self.build = build
        self.spec = spec
        self.data = data if data is not None else (spec.data if spec else None)
        self.current_check = ""
        self.budgets = dict(budgets or {})  # declared: [tool.torchvet] budgets
        self.default_budgets = default_budgets or {}  # each check's own, by id
        self.baseline = baseline  # the snapshot the regression checks compare with
        self._memo: dict[Any, tuple[bool, Any, str]] = {}
        self._stopped: dict[Any, tuple[str, float]] = {}  # key -> (check, budget) that cut it
        self._depth = 0  # memo computations under way (only the outermost is marked cut)
        self.memory = MemoryPlan()  # the worker replaces it once the parent grants memory
        self._guard: StateGuard | None = None
        if spec is not None:
            observe_in_train_mode_only(spec.model)

    # -- memoisation -------------------------------------------------------------
    def memo(self, key: Any, compute: Callable[[], T], owner: str | None = None) -> T:
        """``compute()`` once; a failure is the owner's to report, a skip for others."""
        if key in self._memo:
            ok, value, first = self._memo[key]
            if ok:
                return value
            blamed = owner or first
            if blamed == self.current_check:
                raise value
            if isinstance(value, Skip):  # a computation that cannot apply skips everyone
                raise type(value)(str(value))
            raise DependencyFailed(f"not run: {_describe(value)} (see {blamed})")
        self._skip_if_stopped_before(key)
        self._depth += 1
        try:
            value = compute()
        except BudgetExceeded:
            if self._depth == 1:
                self._stopped[key] = (self.current_check, self.budget())
            raise
        except Exception as exc:
            self._memo[key] = (False, exc, owner or self.current_check)
            if owner and owner != self.current_check and not isinstance(exc, Skip):
                raise DependencyFailed(f"not run: {_describe(exc)} (see {owner})") from exc
            raise
        finally:
            self._depth -= 1
        self._memo[key] = (True, value, owner or self.current_check)
        return value

    def _skip_if_stopped_before(self, key: Any) -> None:
        """A shared computation an earlier check's budget cut short is not started again
        under a budget no larger (a large model's training step would be paid, and cut,
        once per reader)."""
        if key not in self._stopped:
            return
        first, seconds = self._stopped[key]
        if self.budget() <= seconds:
            raise Skip(f"not run: the computation it shares with {first} did not finish "
                       f"within {first}'s {seconds:g} s budget; raise the budgets of both "
                       f"([tool.torchvet] budgets) to run them")

    def computed(self, key: Any) -> bool:
        """Whether ``key`` is memoised (its cost is paid)."""
        return key in self._memo

    def memo_keys(self) -> list[Any]:
        return list(self._memo)

    def drop(self, key: Any) -> None:
        """Forget a memoised value to free its memory (a failure is kept: it has an
        owner); asked for again, it is computed again, seeded alike."""
        if self._memo.get(key, (False,))[0]:
            del self._memo[key]

    def begin_check(self, check_id: str) -> None:
        """``check_id`` runs next, on the pristine model whatever ran before it."""
        self.current_check = check_id
        self.restore_model()

    def restore_model(self) -> None:
        """Put the pristine model's buffers and parameter flags back as they were after
        its first eval forward on the standard inputs: that pass settles what a first
        forward settles for good (lazy modules, data-dependent init such as ActNorm), so
        it belongs to the pristine state; later passes and steps do not."""
        if self.spec is None:
            return
        if self._guard is None:
            with contextlib.suppress(Exception):  # forward.runs reports it
                self.eval_output()
            self._guard = StateGuard(self.model)
        self._guard.restore()

    def budget(self, check_id: str | None = None) -> float:
        """Seconds ``check_id`` (default: the running check) may take."""
        return budget_for(check_id or self.current_check, self.budgets, self.default_budgets)

    def forget(self) -> None:
        """Drop every memoised computation (after a trial forward that failed)."""
        self._memo.clear()

    # -- the model -------------------------------------------------------------------
    @property
    def model(self) -> nn.Module:
        assert self.spec is not None, "model checks need a model spec"
        return self.spec.model

    def fresh_copy(self) -> nn.Module:
        """An independent, faithful copy of the pristine model (training mutates it):
        a deep copy, or a fresh factory instance seeded like the original and loaded
        with the pristine state where a deep copy is not faithful (TorchScript
        submodules) or fails. :meth:`training_loss` binds the spec's loss and step to it."""
        self.restore_model()

        def like_original() -> nn.Module:
            model = module_of(self.build(self.seed)).to(self.device)
            observe_in_train_mode_only(model)
            return model

        return copy_model(self.model, like_original)

    def rebuild(self) -> nn.Module:
        """A new instance from the factory, as the user's code builds it (seeded apart
        from the original, so state the state_dict does not restore shows)."""
        return module_of(self.build()).to(self.device)

    def parameters_dtype(self) -> torch.dtype:
        for p in self.model.parameters():
            if p.is_floating_point():
                return p.dtype
        for b in self.model.buffers():
            if b.is_floating_point():
                return b.dtype
        return torch.get_default_dtype()

    # -- inputs and outputs ---------------------------------------------------------
    @property
    def batch_size(self) -> int:
        return self.spec.batch_size if self.spec else 2

    @property
    def train_batch_size(self) -> int:
        return max(2, self.batch_size)

    def inputs(self, batch_size: int | None = None, variant: int = 0) -> Inputs:
        assert self.spec is not None and self.spec.inputs is not None
        size = batch_size or self.batch_size
        made = self.memo(
            ("inputs", size, variant),
            lambda: self.spec.inputs.make(size, variant),  # type: ignore[union-attr]
        )
        # a copy per call: a forward that writes into its input must not change the
        # inputs of every later check (forward.input_mutation reports it once)
        return made.map(lambda t: t.to(self.device, copy=True))

    def target(self, batch_size: int | None = None, variant: int = 0) -> Any:
        assert self.spec is not None
        if self.spec.target is None:
            return None
        size = batch_size or self.batch_size
        value = self.memo(("target", size, variant), lambda: self.spec.target.make(size, variant))  # type: ignore[union-attr]
        if isinstance(value, torch.Tensor):
            return value.to(self.device)
        return value

    @staticmethod
    def call(model: nn.Module, inputs: Inputs) -> Any:
        return model(*inputs.args, **inputs.kwargs)

    def eval_output(self, batch_size: int | None = None, variant: int = 0) -> Any:
        """The eval-mode output on the standard inputs (memoised, owned by forward.runs)."""
        size = batch_size or self.batch_size

        def compute() -> Any:
            if self._guard is not None:
                self._guard.restore()
            seed_everything(derived_seed(self.seed, "eval", size, variant))
            model = self.model.eval()
            with torch.no_grad():
                return self.call(model, self.inputs(size, variant))

        owner = "forward.runs" if size == self.batch_size and variant == 0 else None
        return self.memo(("eval", size, variant), compute, owner=owner)

    # -- losses ---------------------------------------------------------------------
    def surrogate(self, output: Any) -> torch.Tensor:
        """A fixed random projection of every floating output leaf (never ``sum()``)."""
        return surrogate_loss(output, self.seed)

    def loss_of(self, output: Any, target: Any, loss_fn: Any = None) -> Any:
        """The declared loss of ``output`` (the surrogate when none is declared)."""
        assert self.spec is not None
        loss_fn = loss_fn if loss_fn is not None else self.spec.loss
        if loss_fn is None:
            return self.surrogate(output)
        prediction = output
        if isinstance(loss_fn, nn.modules.loss._Loss) and not isinstance(output, torch.Tensor):
            primary = primary_leaf(output)
            prediction = primary[1] if primary else output
        if target is None and isinstance(prediction, torch.Tensor):
            target = auto_target(loss_fn, prediction, self.seed, self.spec.num_classes)
        if target is None:
            return loss_fn(prediction)
        return loss_fn(prediction, target)

    def training_loss(self, model: nn.Module, inputs: Inputs, target: Any) -> Any:
        """One training forward of ``model`` (the pristine model or a copy): the user's
        step, else the loss of the output; a loss or step that belongs to the model
        (a method of it, a loss module inside it) is the copy's own."""
        assert self.spec is not None
        inputs = inputs.map(torch.Tensor.clone)  # each step gets the batch as it was made
        if self.spec.step is not None:
            step = bound_to(self.spec.step, self.model, model)
            return step(model, inputs.user_form())
        loss_fn = bound_to(self.spec.loss, self.model, model)
        return self.loss_of(self.call(model, inputs), target, loss_fn)

    @property
    def uses_surrogate(self) -> bool:
        return self.spec is not None and not self.spec.has_real_loss

    # -- comparisons ----------------------------------------------------------------
    def tolerance(self, dtype: torch.dtype, cross_batch: bool = False) -> tuple[float, float]:
        """(atol, rtol): assert_close's per-dtype defaults, widened for cross-batch
        comparisons, overridden by the spec's ``tolerance``."""
        defaults = {
            torch.float16: (1e-5, 1e-3), torch.bfloat16: (1e-5, 1.6e-2),
            torch.float32: (1e-5, 1.3e-6), torch.float64: (1e-7, 1e-7),
            torch.complex64: (1e-5, 1.3e-6), torch.complex128: (1e-7, 1e-7),
        }
        atol, rtol = defaults.get(dtype, (0.0, 0.0))
        if cross_batch:
            atol, rtol = max(atol, CROSS_BATCH_ATOL), max(rtol, CROSS_BATCH_RTOL)
        if self.spec is not None and self.spec.tolerance:
            atol = self.spec.tolerance.get("atol", atol)
            rtol = self.spec.tolerance.get("rtol", rtol)
        return atol, rtol

    # -- locations ------------------------------------------------------------------
    def where_exception(self, exc: BaseException) -> Location:
        return self.locator.for_exception(exc) or self.where_model()

    def where_parameters(self, names: list[str]) -> Location:
        return self.locator.for_parameters(self.model, names) or self.where_model()

    def where_model(self) -> Location:
        if self.spec is not None:
            found = self.locator.for_object(self.spec.model)
            if found:
                return found
        return self.where_factory()

    def where_factory(self) -> Location:
        if self.factory.file and self.factory.line:
            return self.locator.relative(self.factory.file), self.factory.line
        return None


def module_of(obj: Any) -> nn.Module:
    """The module inside whatever a model factory returned."""
    if isinstance(obj, nn.Module):
        return obj
    model = obj.get("model") if isinstance(obj, dict) else getattr(obj, "model", None)
    if not isinstance(model, nn.Module):
        raise TypeError("the factory did not return a model on the second call")
    return model


def _describe(exc: BaseException) -> str:
    """A failure as the skip of a dependent check names it (a skip's reason as is)."""
    return first_line(exc) if isinstance(exc, DependencyFailed) else one_line(exc)
