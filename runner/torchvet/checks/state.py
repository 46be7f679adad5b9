"""state.*: what ``state_dict`` saves is everything the model needs.

``state.roundtrip`` saves the pristine model's ``state_dict`` with ``torch.save`` to a
file, loads it with ``torch.load(weights_only=True)`` (the default since torch 2.6, and
the only safe way to load a checkpoint from elsewhere; memory-mapped, so a large model's
checkpoint streams through rather than sitting in memory beside it) into a *fresh*
factory instance built with a different seed, with ``strict=True``, and runs the same
eval forward. Anything the model
keeps outside its parameters and buffers — layers in a plain list, a tensor attribute, a
random non-persistent buffer — then shows up as a changed output, and the check names it.
"""

from __future__ import annotations

import inspect
import io
import pickle
import tempfile
import traceback
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..unit.context import CheckContext
from ..unit.copies import released_as_loaded, settle_path
from ..unit.text import one_line
from ..unit.torch_compat import load_weights
from ..verdict import Location, Outcome, Skip, failed, passed
from .causes.unregistered import MODULE_INTERNALS, find_unregistered
from .registry import check
from .shared.comparison import Difference, first_difference, seeded_eval


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor):
        return a.shape == b.shape and a.dtype == b.dtype and bool(
            torch.equal(a.detach().cpu(), b.detach().cpu()))
    try:
        return bool(a == b)
    except Exception:
        return True


def differing_state(pristine: nn.Module, fresh: nn.Module) -> list[tuple[str, str]]:
    """(description, dotted path) of state outside ``state_dict`` that differs between two
    instances: non-persistent buffers and plain scalar/tensor attributes."""
    fresh_modules = dict(fresh.named_modules())
    found: list[tuple[str, str]] = []
    for path, module in pristine.named_modules():
        other = fresh_modules.get(path)
        if other is None:
            continue
        prefix = f"{path}." if path else ""
        for name in sorted(module._non_persistent_buffers_set):
            a, b = module._buffers.get(name), other._buffers.get(name)
            if a is not None and b is not None and not _same(a, b):
                found.append((
                    f"buffer {prefix}{name} is registered with persistent=False, so state_dict "
                    "omits it, and a fresh instance initialises it differently: make it "
                    "persistent (or compute it deterministically)",
                    f"{prefix}{name}",
                ))
        if type(module).__module__.startswith("torch."):
            continue
        theirs = vars(other)
        for attr, value in vars(module).items():
            if attr in MODULE_INTERNALS or attr not in theirs:
                continue
            if isinstance(value, (bool, int, float, complex)) and not _same(value, theirs[attr]):
                found.append((
                    f"self.{prefix}{attr} = {value!r} is a plain Python attribute that differs "
                    f"in a fresh instance ({theirs[attr]!r}) and is not saved: store it as a "
                    "buffer (or return it from get_extra_state)",
                    f"{prefix}{attr}",
                ))
    return found


# --------------------------------------------------------------------------- the check


def _weights_only_loadable(value: Any) -> BaseException | None:
    buffer = io.BytesIO()
    try:
        torch.save(value, buffer)
        buffer.seek(0)
        torch.load(buffer, weights_only=True, map_location="cpu")
    except Exception as exc:
        return exc
    return None


def _extra_state_where(ctx: CheckContext, key: str) -> Location:
    module_path = key.rpartition(".")[0]
    owner: Any = ctx.model.get_submodule(module_path) if module_path else ctx.model
    method = getattr(type(owner), "get_extra_state", None)
    if method is not None:
        try:
            file = inspect.getsourcefile(method)
            _, line = inspect.getsourcelines(method)
        except (OSError, TypeError):
            file = None
        if file and ctx.locator.is_project_file(file):
            return ctx.locator.relative(file), line
    return ctx.locator.for_path(ctx.model, module_path) or ctx.where_model()


def _unloadable(ctx: CheckContext, state: dict[str, Any], exc: BaseException,
                stage: str) -> Outcome:
    culprits = [(k, v) for k, v in state.items() if _weights_only_loadable(v) is not None]
    if not culprits:
        return failed(
            f"the state_dict cannot go through torch.{stage}: {one_line(exc)}; keep only "
            "tensors and plain Python values in it",
            traceback.format_exc(),
        )
    key, value = culprits[0]
    holder = (f"get_extra_state() of {key.rpartition('.')[0] or 'the model'}"
              if key.endswith("_extra_state") else "a state_dict hook")
    return failed(
        f"state_dict[{key!r}] holds a {type(value).__module__}.{type(value).__qualname__} "
        f"object from {holder} that torch.load(weights_only=True) refuses: return tensors, "
        "numbers, strings, or lists/dicts of them (or allow the class with "
        "torch.serialization.add_safe_globals)",
        f"torch.{stage} failed: {one_line(exc)}\nunloadable keys: "
        + ", ".join(k for k, _ in culprits),
        _extra_state_where(ctx, key),
    )


def _key_mismatch(ctx: CheckContext, fresh: nn.Module, state: dict[str, Any],
                  exc: BaseException) -> Outcome:
    text = str(exc)
    missing: list[str] = []
    unexpected: list[str] = []
    try:
        result = fresh.load_state_dict(state, strict=False)
        missing, unexpected = list(result.missing_keys), list(result.unexpected_keys)
    except Exception:
        pass
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"missing {', '.join(missing[:4])}{' ...' if len(missing) > 4 else ''}"
                         " (in a fresh instance, not in the saved state)")
        if unexpected:
            parts.append(f"unexpected {', '.join(unexpected[:4])}"
                         f"{' ...' if len(unexpected) > 4 else ''} (saved, but a fresh "
                         "instance has no such entry)")
        key = (unexpected or missing)[0]
        where = ctx.locator.for_path(ctx.model if unexpected else fresh, key.rpartition(".")[0])
        return failed(
            f"load_state_dict(strict=True) into a fresh instance fails: {'; '.join(parts)}: "
            "the architecture must not depend on what happened after __init__ (modules "
            "created in forward(), or a random or input-dependent structure); build every "
            "layer in __init__",
            text, where,
        )
    reasons = [line.strip() for line in text.splitlines()[1:] if line.strip()]
    reason = reasons[0].rstrip(".") if reasons else one_line(exc)
    key = reason.removeprefix("size mismatch for ").partition(":")[0]
    where = (ctx.locator.for_path(ctx.model, key.rpartition(".")[0])
             if reason.startswith("size mismatch for ") else None)
    return failed(
        f"load_state_dict(strict=True) into a fresh instance fails: {reason}: the sizes of "
        "a fresh instance differ from the saved ones; build every layer with sizes fixed "
        "in __init__ (not derived from data seen in forward or from randomness)",
        text, where,
    )


def _explain_mismatch(ctx: CheckContext, fresh: nn.Module, diff: Difference) -> Outcome:
    lead = (f"{diff} after a state_dict round trip (torch.save, torch.load(weights_only="
            "True), load_state_dict(strict=True)) into a fresh instance")
    details = []
    unregistered = find_unregistered(ctx.model)
    if unregistered:
        first = unregistered[0]
        details = [f"{u.describe()}: {u.fix()}" for u in unregistered]
        return failed(
            f"{first.describe()}, which state_dict does not save: {first.fix()} — {lead}",
            "\n".join(details),
            ctx.locator.for_path(ctx.model, first.dotted) or ctx.where_model(),
        )
    differing = differing_state(ctx.model, fresh)
    if differing:
        text, dotted = differing[0]
        return failed(f"{text} — {lead}", "\n".join(t for t, _ in differing),
                      ctx.locator.for_path(ctx.model, dotted) or ctx.where_model())
    return failed(
        f"{lead}, yet every parameter and buffer loaded: the output depends on state outside "
        "the state_dict (a Python attribute set in forward, a global, a random draw not "
        "controlled by torch's seed); keep model state in parameters and buffers",
    )


@check("state.roundtrip")
def roundtrip(ctx: CheckContext) -> Outcome:
    ctx.eval_output()  # the forward must work at all (forward.runs owns its failure)
    with tempfile.TemporaryDirectory(prefix="torchvet-state-") as scratch:
        return _roundtrip(ctx, Path(scratch) / "state.pt")


def _roundtrip(ctx: CheckContext, path: Path) -> Outcome:
    """Save to a file and map it back (``mmap=True``), so the checkpoint is never a
    second copy of the weights in memory: only the fresh instance is."""
    inputs = ctx.inputs()
    reference = seeded_eval(ctx, ctx.model, inputs)

    state = ctx.model.state_dict()
    try:
        torch.save(state, path)
    except (pickle.PicklingError, TypeError, AttributeError) as exc:
        return _unloadable(ctx, dict(state), exc, "save")
    settle_path(path)
    try:
        loaded = load_weights(path)
    except Exception as exc:
        return _unloadable(ctx, dict(state), exc, "load(weights_only=True)")
    del state

    try:
        fresh = ctx.rebuild()
    except Exception as exc:
        raise RuntimeError(
            f"the factory raised {one_line(exc)} when called a second time for a fresh "
            "instance; a factory must build a new model on every call"
        ) from exc
    if fresh is ctx.model:
        raise Skip("the factory returns the same model instance on every call, so there is "
                   "no fresh instance to load the state_dict into; build a new model per call")
    try:
        with released_as_loaded(fresh):
            fresh.load_state_dict(loaded, strict=True)
    except RuntimeError as exc:
        return _key_mismatch(ctx, fresh, loaded, exc)

    restored = seeded_eval(ctx, fresh, inputs)
    diff = first_difference(reference, restored, lambda t: ctx.tolerance(t.dtype))
    if diff is None:
        tensors = len(loaded)
        return passed(f"{tensors} state_dict entries restore the outputs in a fresh instance")
    again = seeded_eval(ctx, ctx.model, inputs)
    if first_difference(reference, again, lambda t: ctx.tolerance(t.dtype)) is not None:
        raise Skip("two seeded eval passes of the same model already differ, so a round trip "
                   "cannot be judged (see forward.determinism)")
    return _explain_mismatch(ctx, fresh, diff)
