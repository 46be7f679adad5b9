"""What an eval forward changes besides its output, and whether it repeats itself.

Two eval passes on the same input can differ for three reasons, and each has its own fix:
the forward writes into the caller's tensor (forward.input_mutation), it changes the
model's own state that the next call reads (a Python attribute, a tensor kept on the
module, a buffer), or it draws random numbers. :func:`repeatability` runs the two passes
once per unit, so every comparison check can ask it before blaming the model for a
difference; :func:`state_culprits` proves which changed attribute explains one.
"""

from __future__ import annotations

import contextlib
import math
import traceback
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from ...unit import optrace
from ...unit.context import CheckContext
from ...unit.inputs import Inputs
from ...unit.pytree import floating_leaves, leaves
from ...unit.seeding import derived_seed, seed_everything
from ...verdict import Location
from .unregistered import MODULE_INTERNALS

# the attributes every nn.Module has; the rest is the model's own state
RESTORE_LIMIT = 1 << 22  # elements: larger tensors are compared but not restored


# --------------------------------------------------------------------------- inputs


@dataclass
class Mutation:
    path: str  # args[0]
    change: str  # "values change by up to 3.2"


def input_mutations(ctx: CheckContext) -> list[Mutation]:
    """Input tensors the eval forward writes into (memoised; forward.runs owns a crash)."""

    def compute() -> list[Mutation]:
        ctx.eval_output()
        given, pristine = ctx.inputs(), ctx.inputs()
        versions = {path: _version(t) for path, t in given.tensors()}
        seed_everything(derived_seed(ctx.seed, "eval", ctx.batch_size, 0))
        with torch.no_grad():
            ctx.call(ctx.model.eval(), given)
        found = []
        for (path, after), (_, before) in zip(given.tensors(), pristine.tensors(), strict=True):
            if not _same(after, before):
                found.append(Mutation(path, _change(before, after)))
            elif _version(after) != versions[path]:
                found.append(Mutation(path, "written in place, to the same values this time"))
        return found

    return ctx.memo("input-mutations", compute, owner="forward.input_mutation")


def locate_input_write(ctx: CheckContext, path: str) -> tuple[str, Location] | None:
    """The op (and line) that writes into input ``path``, by replay."""
    inputs = ctx.inputs()
    watched = {optrace.storage_of(t): f"the caller's {p}" for p, t in inputs.tensors()
               if p == path}
    model = ctx.model.eval()

    def run() -> None:
        with torch.no_grad():
            ctx.call(model, inputs)

    return optrace.trace(run, optrace.inplace_into(watched), ctx.locator)


def _version(t: torch.Tensor) -> int:
    try:
        return int(t._version)
    except Exception:  # inference tensors have no version counter
        return -1


def _same(a: torch.Tensor, b: torch.Tensor) -> bool:
    if a.shape != b.shape or a.dtype != b.dtype:
        return False
    if a.is_floating_point() or a.is_complex():
        return bool(torch.equal(a, b) or torch.allclose(a, b, rtol=0, atol=0, equal_nan=True))
    return bool(torch.equal(a, b))


def _change(before: torch.Tensor, after: torch.Tensor) -> str:
    if before.shape != after.shape:
        return f"its shape changes {tuple(before.shape)} -> {tuple(after.shape)}"
    if before.is_floating_point():
        diff = (after.double() - before.double()).abs().nan_to_num(math.inf)
        return f"values change by up to {float(diff.max()):.3g}"
    return f"{int((after != before).sum())} of {before.numel()} values change"


# --------------------------------------------------------------------------- model state


@dataclass(frozen=True)
class Slot:
    """One piece of a module's state: a Python attribute, a parameter or a buffer."""

    module: str  # dotted module path, "" for the model itself
    key: str
    kind: str  # "attribute" | "parameter" | "buffer"

    @property
    def label(self) -> str:
        return f"self.{self.key}" if not self.module else f"{self.module}.{self.key}"


@dataclass
class StateRecord:
    """Every module's own state at one moment, slot by slot."""

    tokens: dict[Slot, Any] = field(default_factory=dict)
    values: dict[Slot, Any] = field(default_factory=dict)  # references, for restoring
    copies: dict[Slot, torch.Tensor] = field(default_factory=dict)  # tensors' contents
    owners: dict[Slot, nn.Module] = field(default_factory=dict)


def record_state(model: nn.Module) -> StateRecord:
    """A cheap fingerprint of every module's own state: tensor versions rather than
    copies, and copies of buffers and tensor attributes (not parameters, which an eval
    forward has no business changing) so they can be restored."""
    record = StateRecord()
    for name, module in model.named_modules():
        slots: list[tuple[str, str, Any]] = [
            (k, "attribute", v) for k, v in vars(module).items()
            if k not in MODULE_INTERNALS and not isinstance(v, nn.Module) and not callable(v)
        ]
        slots += [(k, "parameter", v) for k, v in module._parameters.items()]
        slots += [(k, "buffer", v) for k, v in module._buffers.items()]
        for key, kind, value in slots:
            slot = Slot(name, key, kind)
            record.tokens[slot] = _token(value)
            record.values[slot] = value
            record.owners[slot] = module
            if (isinstance(value, torch.Tensor) and kind != "parameter"
                    and value.numel() <= RESTORE_LIMIT):
                record.copies[slot] = value.detach().clone()
    return record


def _token(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        return ("tensor", id(value), _version(value), tuple(value.shape), value.dtype)
    if value is None or isinstance(value, (bool, int, float, complex, str, bytes)):
        return ("value", repr(value))
    if isinstance(value, (tuple, list)) and len(value) <= 64 and all(
            v is None or isinstance(v, (bool, int, float, str)) for v in value):
        return ("value", repr(value))
    if isinstance(value, (list, dict, set)):
        return ("container", id(value), len(value))
    return ("object", id(value))


def changed(before: StateRecord, after: StateRecord) -> list[Slot]:
    """Slots whose value the forward replaced or changed in place (new ones included)."""
    return [s for s, token in after.tokens.items() if before.tokens.get(s) != token]


def describe(slot: Slot, before: StateRecord, after: StateRecord) -> str:
    old, new = before.values.get(slot), after.values.get(slot)
    kind = {"attribute": "a Python attribute", "parameter": "a parameter",
            "buffer": "a buffer"}[slot.kind]
    if isinstance(new, torch.Tensor) and slot.kind == "attribute":
        kind = "a tensor kept as a plain attribute"
    if isinstance(new, (bool, int, float)) and isinstance(old, (bool, int, float)):
        return f"{slot.label} ({kind}: {old:.6g} -> {new:.6g})"
    if old is None and new is not None:
        return f"{slot.label} ({kind}, set by the first call)"
    return f"{slot.label} ({kind})"


def restore(record: StateRecord, slots: list[Slot]) -> None:
    """Put ``slots`` back to their values in ``record``."""
    for slot in slots:
        owner, value = record.owners.get(slot), record.values.get(slot)
        if owner is None:
            continue
        if slot.kind == "attribute":
            object.__setattr__(owner, slot.key, value)
        else:
            getattr(owner, f"_{slot.kind}s")[slot.key] = value
        copy = record.copies.get(slot)
        if isinstance(value, torch.Tensor) and copy is not None:
            with torch.no_grad():
                value.copy_(copy)


@contextlib.contextmanager
def watching_assignments(targets: dict[tuple[int, str], str], ctx: CheckContext
                         ) -> Iterator[dict[str, Location]]:
    """Record the project line of the first assignment to each (module id, attribute)."""
    found: dict[str, Location] = {}
    original = nn.Module.__setattr__

    def spy(self: nn.Module, name: str, value: Any) -> None:
        label = targets.get((id(self), name))
        if label is not None and label not in found:
            for frame in reversed(traceback.extract_stack()[:-1]):
                if frame.lineno and ctx.locator.is_project_file(frame.filename):
                    found[label] = (ctx.locator.relative(frame.filename), frame.lineno)
                    break
        original(self, name, value)

    nn.Module.__setattr__ = spy  # type: ignore[method-assign]
    try:
        yield found
    finally:
        nn.Module.__setattr__ = original  # type: ignore[method-assign]


# --------------------------------------------------------------------------- two passes


@dataclass
class Repeatability:
    """Two eval passes from the same state on the same input, seeded differently."""

    first: Any
    difference: tuple[str, float] | None  # (output leaf, largest difference)
    before: StateRecord
    after: StateRecord


def repeatability(ctx: CheckContext) -> Repeatability:
    """Memoised: forward.determinism reports it; comparison checks defer to it."""

    def compute() -> Repeatability:
        ctx.eval_output()
        model = ctx.model.eval()
        before = record_state(model)
        first = _pass(ctx, model, "determinism-first-pass")
        after = record_state(model)
        second = _pass(ctx, model, "determinism-second-pass")
        return Repeatability(first, first_difference(ctx, first, second), before, after)

    return ctx.memo("repeatability", compute, owner="forward.determinism")


def _pass(ctx: CheckContext, model: nn.Module, salt: str, inputs: Inputs | None = None) -> Any:
    seed_everything(derived_seed(ctx.seed, salt))
    with torch.no_grad():
        return ctx.call(model, inputs if inputs is not None else ctx.inputs())


def first_difference(ctx: CheckContext, first: Any, second: Any) -> tuple[str, float] | None:
    """(leaf, largest difference) of the first floating output that differs."""
    other = dict(leaves(second))
    for path, tensor in floating_leaves(first):
        twin = other.get(path)
        if twin is None or twin.shape != tensor.shape:
            return path, math.inf
        atol, rtol = ctx.tolerance(tensor.dtype)
        both_nan = torch.isnan(tensor) & torch.isnan(twin)
        diff = (tensor.double() - twin.double()).abs().masked_fill(both_nan, 0)
        if bool((diff > atol + rtol * twin.double().abs()).any()):
            return path, float(diff.nan_to_num(math.inf).max())
    return None


@dataclass
class StateCause:
    slots: list[Slot]
    text: str  # "self.tau (a Python attribute: 2 -> 1.998)"
    where: Location


def state_culprits(ctx: CheckContext, rep: Repeatability) -> StateCause | None:
    """The changed state that explains two different passes: with it restored the first
    pass repeats exactly; each culprit alone, advanced, changes the output."""
    moved = changed(rep.before, rep.after)
    if not moved:
        return None
    model = ctx.model.eval()
    restore(rep.before, moved)
    replay = _pass(ctx, model, "determinism-first-pass")
    if first_difference(ctx, rep.first, replay) is not None:
        return None  # the state alone does not explain it: randomness (or worse)
    culprits = []
    for slot in moved:
        restore(rep.before, moved)
        restore(rep.after, [slot])
        if first_difference(ctx, rep.first, _pass(ctx, model, "determinism-first-pass")):
            culprits.append(slot)
    culprits = culprits or moved
    restore(rep.before, moved)
    where = _where_changed(ctx, model, culprits[0], rep.before)
    restore(rep.before, moved)
    text = ", ".join(describe(s, rep.before, rep.after) for s in culprits[:3])
    return StateCause(culprits, text, where)


def _where_changed(ctx: CheckContext, model: nn.Module, slot: Slot, before: StateRecord
                   ) -> Location:
    """The line that assigns ``slot`` during a forward, or writes into it in place."""
    owner = before.owners[slot]
    value = before.values.get(slot)
    watched = ({optrace.storage_of(value): slot.label} if isinstance(value, torch.Tensor)
               else {})
    tracer = optrace.OpTracer(optrace.inplace_into(watched), ctx.locator)
    with watching_assignments({(id(owner), slot.key): slot.label}, ctx) as assigned:
        try:
            with tracer:
                _pass(ctx, model, "determinism-first-pass")
        except Exception:
            pass
    if slot.label in assigned:
        return assigned[slot.label]
    if tracer.found is not None:
        return tracer.found[1]
    return ctx.locator.for_path(model, f"{slot.module}.{slot.key}".strip(".")) or None
