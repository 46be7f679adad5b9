"""regression: the unit against its snapshot (committed under ``.torchvet/snapshots``, or
built from a base git ref by ``torchvet run --baseline REF``).

What changed is found by :mod:`torchvet.regression.diff` (the same code builds the
job summary's Model changes table); these checks phrase it: the signature (what breaks
callers and checkpoints), the values (what the model computes), the cost. Without a
snapshot they skip saying how to create one; an intended change is accepted with
``torchvet snapshot --update``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..regression.compute import model_cost, model_params, signature_of, values_key, values_of
from ..regression.diff import (
    DEFAULT_COST_SHARE,
    SignatureDiff,
    cost_changes,
    diff_signature,
    diff_values,
    first_moved_module,
    leaf_dtypes,
    module_changes,
)
from ..regression.store import CREATE_HINT, UPDATE_HINT
from ..unit.context import CheckContext
from ..verdict import Location, Outcome, Skip, failed, passed, warned
from .registry import check

CHECKPOINTS = ("checkpoints saved before this change will not load (load_state_dict with "
               "strict=True)")


def baseline_snapshot(ctx: CheckContext) -> Mapping[str, Any]:
    """The baseline's snapshot of the unit; a skip saying how to get one when there is none."""
    found = ctx.baseline
    if found is None or found.snapshot is None:
        raise Skip(found.missing if found is not None else f"no snapshot: {CREATE_HINT}")
    return found.snapshot


def source(ctx: CheckContext) -> str:
    return ctx.baseline.source if ctx.baseline is not None else "the snapshot"


def signature_diff(ctx: CheckContext) -> SignatureDiff:
    return diff_signature(baseline_snapshot(ctx).get("signature") or {}, signature_of(ctx))


@check("regression.signature")
def signature(ctx: CheckContext) -> Outcome:
    diff = signature_diff(ctx)
    if not diff.changed:
        return passed(f"outputs, state_dict and inputs match {source(ctx)}")
    lines = diff.lines()
    more = f"; {len(lines)} changes in all, see details" if len(lines) > 1 else ""
    if diff.renamed:
        first = diff.renamed[0]
        head = (f"state_dict keys renamed {first.describe()}, e.g. {first.keys[0][0]} → "
                f"{first.keys[0][1]}: {CHECKPOINTS}; keep the old name or map the old keys "
                f"when loading")
    elif diff.reshaped:
        shapes = ", ".join(f"{k} {a} → {b}" for k, a, b in diff.reshaped[:3])
        head = f"state_dict shapes changed: {shapes}: {CHECKPOINTS}"
    elif not diff.checkpoint_compatible:
        head = f"state_dict {diff.state_dict_lines()[0]}: {CHECKPOINTS}"
    else:
        head = f"{lines[0]}: code that consumes this unit may break"
    return failed(f"{head} (vs {source(ctx)}){more}; {UPDATE_HINT}", "\n".join(lines),
                  where=_where_keys(ctx, diff))


def _where_keys(ctx: CheckContext, diff: SignatureDiff) -> Location:
    if ctx.spec is None:
        return None
    keys = diff.new_keys() or diff.removed
    return ctx.where_parameters(keys) if keys else None


def comparable_values(ctx: CheckContext) -> tuple[Mapping[str, Any], Mapping[str, Any]]:
    """(the snapshot's values, the unit's) when they can be compared: same seed, values
    for this torch and device, same inputs; else a skip saying why."""
    old = baseline_snapshot(ctx)
    key = values_key(ctx.device)
    recorded = (old.get("measured") or {}).get(key)
    if old.get("seed") != ctx.seed:
        raise Skip(f"{source(ctx)} was taken with seed {old.get('seed')} and this run uses "
                   f"seed {ctx.seed}: values compare only at the same seed")
    if recorded is None:
        keys = ", ".join(sorted(old.get("measured") or {})) or "none"
        raise Skip(f"no values for {key} in {source(ctx)} (it has: {keys}): `torchvet "
                   "snapshot` adds them for this torch and device")
    now = values_of(ctx)
    if signature_diff(ctx).inputs or diff_values(recorded.get("inputs") or {},
                                                 now.get("inputs") or {}, {}):
        raise Skip(f"the inputs differ from those of {source(ctx)}: the outputs cannot be "
                   f"compared; {UPDATE_HINT}")
    return recorded, now


@check("regression.outputs")
def outputs(ctx: CheckContext) -> Outcome:
    recorded, now = comparable_values(ctx)
    declared = ctx.spec.tolerance if ctx.spec is not None else None
    dtypes = leaf_dtypes(signature_of(ctx).get("outputs") or {})
    moved = diff_values(recorded.get("outputs") or {}, now.get("outputs") or {}, dtypes,
                        declared)
    if not moved:
        compared = [leaf for leaf in recorded.get("outputs") or {} if leaf in dtypes]
        if not compared:
            raise Skip("no output leaf in common with the snapshot (see regression.signature)")
        return passed(f"{len(compared)} leaf(s) match {source(ctx)} within tolerance")
    details = "\n".join(m.describe() for m in moved)
    if ctx.spec is None:
        return failed(f"the first batch changed: {moved[0].describe()} vs {source(ctx)}; "
                      f"{UPDATE_HINT}", details)
    culprit = first_moved_module(recorded.get("modules") or {}, now.get("modules") or {},
                                 str(signature_of(ctx).get("dtype")), declared)
    first = f", first at the output of {culprit} (the modules called before it match)" \
        if culprit else ""
    return failed(
        f"output {moved[0].describe()} vs {source(ctx)}{first}: the model computes something "
        f"else (a changed activation, init, wiring or default?); {UPDATE_HINT}", details,
        where=ctx.where_parameters([culprit]) if culprit else None)


@check("regression.cost")
def cost(ctx: CheckContext) -> Outcome:
    old = baseline_snapshot(ctx)
    key = values_key(ctx.device)
    share = ctx.baseline.cost_share if ctx.baseline is not None else DEFAULT_COST_SHARE
    new = {"params": model_params(ctx), "measured": {key: model_cost(ctx)}}
    changes = cost_changes(old, new, key, compare_measured=not signature_diff(ctx).inputs)
    beyond = [c for c in changes if abs(c.share) > share]
    if not beyond:
        return passed("; ".join(c.describe() for c in changes))
    modules = module_changes(old, new)
    culprit = ""
    where = None
    if modules:
        name, before, after = modules[0]
        culprit = f"; {name}: {before:,} → {after:,} parameters"
        where = ctx.where_parameters([name])
    return warned(
        f"cost changed by more than {share:.0%} vs {source(ctx)}: "
        f"{'; '.join(c.describe() for c in beyond)}{culprit}; {UPDATE_HINT}",
        "\n".join([*(c.describe() for c in changes),
                   *(f"{m}: {a:,} → {b:,} parameters" for m, a, b in modules)]),
        where=where)
