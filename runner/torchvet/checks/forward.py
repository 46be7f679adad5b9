"""forward.*: what an eval-mode forward pass must get right."""

from __future__ import annotations

import traceback
from typing import Any

import torch

from ..unit import optrace
from ..unit.context import CheckContext
from ..unit.inputs import Inputs
from ..unit.pytree import floating_leaves, leaves, primary_leaf, structure
from ..unit.seeding import derived_seed, seed_everything
from ..unit.text import dtype_name, index_str, one_line, shape_str, unravel
from ..verdict import DependencyFailed, Outcome, Skip, failed, passed, warned
from .causes import batch_mixing, forward_errors, side_effects
from .registry import check
from .shared import influence, layout
from .shared.forward_warnings import forward_warnings


def replay(ctx: CheckContext, predicate: optrace.Predicate, inputs: Inputs | None = None
           ) -> tuple[str, tuple[str, int]] | None:
    """Re-run the eval forward under an op tracer to find the culprit line."""
    model = ctx.model.eval()
    args = inputs if inputs is not None else ctx.inputs()

    def run() -> None:
        with torch.no_grad():
            ctx.call(model, args)

    return optrace.trace(run, predicate, ctx.locator)


@check("forward.runs")
def runs(ctx: CheckContext) -> Outcome:
    try:
        out = ctx.eval_output()
    except Exception as exc:
        details = traceback.format_exc()
        cause = forward_errors.explain(ctx, ctx.inputs(), exc)
        return failed(
            f"the forward pass raised {one_line(exc)} (inputs: {ctx.inputs().describe()})"
            + (f"; {cause.phrase()}" if cause else ""),
            details,
            cause.where if cause else ctx.where_exception(exc),
        )
    tensors = leaves(out)
    if not tensors:
        return failed(
            f"the forward pass returned {structure(out)}, which holds no tensor: return the "
            "outputs as tensors (or tuples, dicts, dataclasses of tensors)"
        )
    source = ctx.spec.inputs.description if ctx.spec and ctx.spec.inputs else ""
    return passed(f"{len(tensors)} output tensor(s) from {ctx.inputs().describe()}"
                  + (f"; inputs: {source}" if source else ""))


@check("forward.finite")
def finite(ctx: CheckContext) -> Outcome:
    out = ctx.eval_output()
    problems = []
    for path, tensor in floating_leaves(out):
        bad = ~torch.isfinite(tensor)
        if bool(bad.any()):
            nan = int(torch.isnan(tensor).sum())
            inf = int(bad.sum()) - nan
            first = index_str(bad.nonzero()[0].tolist())
            problems.append(f"{path}{first} is {tensor[tuple(bad.nonzero()[0])].item()} "
                            f"({nan} NaN, {inf} Inf of {tensor.numel()})")
    if not problems:
        return passed()
    has_nan = any(bool(torch.isnan(t).any()) for _, t in floating_leaves(out))
    found = replay(ctx, optrace.nan_from_nan_free) if has_nan else None
    if found is not None and "fully masked" in found[0]:
        return failed(f"{problems[0]}; first at {found[0]}", "\n".join(problems), found[1])
    found = found or replay(ctx, optrace.nonfinite_from_finite)
    return _failed_at(problems, found, "first at ",
                      "look for log/sqrt of values that can be 0 or negative, division by "
                      "zero, or exp/pow overflow (clamp the input or use a stable form such "
                      "as log_softmax)")


def _failed_at(problems: list[str], found: tuple[str, tuple[str, int]] | None, lead: str,
               fix: str) -> Outcome:
    """The first problem, the op the replay found behind it (at its line), and the fix;
    every problem in the details."""
    culprit = f"; {lead}{found[0]}" if found else ""
    return failed(f"{problems[0]}{culprit}: {fix}", "\n".join(problems),
                  found[1] if found else None)


@check("forward.dtype")
def dtype(ctx: CheckContext) -> Outcome:
    out = ctx.eval_output()
    declared = ctx.spec.output_dtype if ctx.spec else None
    expected = declared or ctx.parameters_dtype()
    wrong = [(p, t.dtype) for p, t in floating_leaves(out)
             if not t.is_complex() and t.dtype != expected]
    if not wrong:
        return passed(f"floating outputs are {dtype_name(expected)}")
    path, got = wrong[0]
    source = "the declared output_dtype" if declared else "the parameters"
    found = replay(ctx, optrace.dtype_changed(expected))
    culprit = f"; first at {found[0]}" if found else ""
    return failed(
        f"{path} is {dtype_name(got)} but {source} are {dtype_name(expected)}{culprit}: a "
        "float64 constant (a numpy array "
        "or scalar, torch.tensor of Python floats with dtype=float64) promotes the "
        "computation; cast it with .to(x.dtype) or register it as a buffer of the right "
        "dtype (if intended, declare output_dtype)",
        "\n".join(f"{p}: {d}" for p, d in wrong),
        found[1] if found else None,
    )


def _shape_matches(actual: tuple[int, ...], declared: tuple[int | None, ...]) -> bool:
    if len(actual) == len(declared):
        return all(d is None or d == a for a, d in zip(actual, declared, strict=False))
    if len(actual) == len(declared) + 1:
        return all(d is None or d == a for a, d in zip(actual[1:], declared, strict=False))
    return False


@check("forward.shape")
def shape(ctx: CheckContext) -> Outcome:
    out = ctx.eval_output()
    primary = primary_leaf(out)
    if primary is None:
        raise Skip("no output tensor with at least one dimension to check")
    path, tensor = primary
    declared = ctx.spec.output_shape if ctx.spec else None
    actual = tuple(tensor.shape)
    if declared is not None:
        if _shape_matches(actual, declared):
            return passed(f"{path} has shape {shape_str(actual)}")
        wanted = shape_str(["*" if d is None else d for d in declared])
        return failed(
            f"{path} has shape {shape_str(actual)} at batch size {ctx.batch_size}, declared "
            f"{wanted}: fix the layer that produces it or update output_shape"
        )
    found = layout.output_layout(ctx).get(path)
    inputs_dim = layout.inputs_batch_dim(ctx)
    if (found is not None and found.factor == 1 and found.dim not in (None, 0, inputs_dim)
            and inputs_dim is not None and not layout.declared(ctx)):
        return failed(
            f"{path} has shape {shape_str(actual)} at batch size {ctx.batch_size}, the batch "
            f"in dim {found.dim} while the inputs carry it in dim {inputs_dim}: dim "
            f"{inputs_dim} should be the batch size; a transpose/permute moved it (if the "
            "layout is intended, declare batch_dim or output_shape)"
        )
    if found is not None and found.dim is not None:
        return passed(f"{path}: {found.describe(actual, ctx.batch_size)}")
    if found is None and actual and actual[0] == ctx.batch_size:
        return passed(f"{path} has shape {shape_str(actual)}")
    if per_sample_list(_outputs_by_size(ctx)):
        return passed(f"out is a list of {ctx.batch_size} per-sample outputs (one per input, "
                      "as detection models return)")
    return failed(
        f"{path} has shape {shape_str(actual)} at batch size {ctx.batch_size} and no dim "
        "follows the batch size across batch sizes: a view/reshape with a hard-coded size or "
        "a .squeeze() dropped it (if the layout is intended, declare output_shape or "
        "batch_dim)"
    )


def _outputs_by_size(ctx: CheckContext) -> dict[int, Any]:
    return layout.outputs_by_size(ctx)


def per_sample_list(outputs: dict[int, Any]) -> bool:
    """Outputs that are a list with one element per sample at every batch size tried,
    the elements alike (torchvision detection: a list of per-image dicts)."""
    ran = {size: out for size, out in outputs.items() if not isinstance(out, Exception)}
    if len(ran) < 2 or not all(isinstance(o, list) and len(o) == s for s, o in ran.items()):
        return False
    layouts = {tuple(p for p, _ in leaves(item)) for out in ran.values() for item in out}
    return len(layouts) == 1 and bool(next(iter(layouts)))


def batched_paths(ctx: CheckContext) -> set[str]:
    """Output leaves whose dim 0 follows the batch size at every size tried."""
    outputs = {s: o for s, o in _outputs_by_size(ctx).items() if not isinstance(o, Exception)}
    if len(outputs) < 2:
        base = ctx.eval_output()
        return {p for p, t in leaves(base) if t.dim() >= 1 and t.shape[0] == ctx.batch_size}
    shapes: dict[str, dict[int, tuple[int, ...]]] = {}
    for size, out in outputs.items():
        for path, tensor in leaves(out):
            shapes.setdefault(path, {})[size] = tuple(tensor.shape)
    return {
        path for path, by_size in shapes.items()
        if len(by_size) == len(outputs)
        and all(len(s) >= 1 and s[0] == size for size, s in by_size.items())
    }


@check("forward.batch_sizes")
def batch_sizes(ctx: CheckContext) -> Outcome:
    ctx.eval_output()
    outputs = _outputs_by_size(ctx)
    for size, out in outputs.items():
        if isinstance(out, Exception):
            return failed(
                f"at batch size {size} the forward raised {one_line(out)}: the model assumes "
                "a fixed batch size (a hard-coded size in view/reshape/expand, or a .squeeze() "
                "that drops the batch dim at batch size 1); use x.shape[0] or -1",
                "".join(traceback.format_exception(out)),
                ctx.where_exception(out),
            )
    base = outputs[ctx.batch_size]
    if per_sample_list(outputs):
        return passed(f"batch sizes {', '.join(map(str, sorted(outputs)))} give one output "
                      "per sample, alike")
    primary = primary_leaf(base)
    structures = {size: [p for p, _ in leaves(out)] for size, out in outputs.items()}
    for size, paths in structures.items():
        if paths != structures[ctx.batch_size]:
            return failed(
                f"the output structure changes with the batch size: {structure(outputs[size])} "
                f"at batch size {size} vs {structure(base)} at {ctx.batch_size}"
            )
    problems = []
    layouts = layout.output_layout(ctx)
    found_layouts = []
    for path, base_tensor in leaves(base):
        base_shape = tuple(base_tensor.shape)
        leaf = layouts.get(path)
        is_primary = primary is not None and path == primary[0]
        if leaf is not None and (leaf.dim is not None or not is_primary):
            found_layouts.append(f"{path}: {leaf.describe(base_shape, ctx.batch_size)}")
            continue
        by_size = {size: tuple(dict(leaves(out))[path].shape) for size, out in outputs.items()}
        size, shp = next(((size, s) for size, s in sorted(by_size.items()) if s != base_shape),
                         (ctx.batch_size, base_shape))
        problems.append(
            f"{path} has shape {shape_str(shp)} at batch size {size} "
            f"(shape {shape_str(base_shape)} at batch size {ctx.batch_size})"
        )
    if problems:
        found = replay(ctx, optrace.squeezed_batch, ctx.inputs(1)) if 1 in outputs else None
        return _failed_at(problems, found, "",
                          "no dim follows the batch size; a .squeeze() drops it at batch "
                          "size 1 (use .squeeze(-1) or .flatten(1)), a hard-coded size in "
                          "view/reshape fixes it (use x.shape[0] or -1)")
    return passed(f"batch sizes {', '.join(map(str, sorted(outputs)))} keep one layout: "
                  + "; ".join(found_layouts))


@check("forward.input_mutation")
def input_mutation(ctx: CheckContext) -> Outcome:
    mutated = side_effects.input_mutations(ctx)
    count = len(ctx.inputs().tensors())
    if not mutated:
        return passed(f"the forward leaves its {count} input tensor(s) unchanged")
    first = mutated[0]
    found = side_effects.locate_input_write(ctx, first.path)
    culprit = f": {found[0]}" if found else ""
    return failed(
        f"the forward changes its input {first.path} in place ({first.change}){culprit}; "
        "the caller's tensor is corrupted, and calling the model twice on the same batch "
        "gives two results: compute on a copy (x = (x - mean) / std, x = x + pos, or "
        "x = x.clone() first)",
        "\n".join(f"{m.path}: {m.change}" for m in mutated),
        found[1] if found else None,
    )


@check("forward.determinism")
def determinism(ctx: CheckContext) -> Outcome:
    rep = side_effects.repeatability(ctx)
    if rep.difference is None:
        return passed("two eval passes agree")
    path, amount = rep.difference
    symptom = f"{path} differs by {amount:.3g} between two eval passes on the same input"
    state = side_effects.state_culprits(ctx, rep)
    if state is not None:
        return failed(
            f"{symptom}: forward() changes {state.text} on every call and the next call "
            "reads it, so the output depends on how often the model ran; update such state "
            "outside forward (in the training loop, e.g. an anneal() method) or reset it on "
            "every call",
            where=state.where,
        )
    found = replay(ctx, optrace.random_op)
    if found is not None:
        return failed(
            f"{symptom}; {found[0]}: randomness in eval mode — pass training=self.training "
            "to functional dropout, or draw noise only under `if self.training:`",
            where=found[1],
        )
    return failed(
        f"{symptom}, with no random op and no change to the model's state in sight: the "
        "forward reads something outside the model that changes between calls (a global, "
        "a cache, the clock)"
    )


@check("forward.batch_independence")
def batch_independence(ctx: CheckContext) -> Outcome:
    ctx.eval_output()
    if side_effects.repeatability(ctx).difference is not None:
        raise DependencyFailed(
            "not run: two eval passes on the same input already differ, so a sample's "
            "output cannot be compared across batches (see forward.determinism)")
    batch = max(batch_mixing.MIN_BATCH, ctx.batch_size)
    base = _output_at(ctx, batch)
    if any(not bool(torch.isfinite(t).all()) for _, t in floating_leaves(base)):
        raise DependencyFailed("not run: the outputs hold NaN/Inf, so samples cannot be "
                               "compared (see forward.finite)")
    layouts = layout.output_layout(ctx)
    primary = primary_leaf(base)
    paths = {p for p, leaf in layouts.items() if leaf is not None and leaf.dim is not None}
    if not paths and primary is not None:
        paths = {primary[0]}  # a pooled output is judged by influence too
    dims = influence.input_dims(ctx)
    if not paths or not dims:
        raise Skip("no input follows the batch dimension, so no sample can be replaced")
    base_inputs = ctx.inputs(batch)
    other = ctx.inputs(batch, variant=1)
    positions = batch_mixing.sample_positions(batch)
    owned = [influence.ownership(ctx, base_inputs, other, base, paths, k, batch)
             for k in positions]
    shapes = dict(leaves(base))
    for own in owned:
        shared = own.shared()
        if shared:
            path, flat = shared
            where = index_str(unravel(flat, shapes[path].shape))
            return _mixing_failure(
                ctx, f"{path}{where} moves both when sample {own.k} changes and when its "
                "batch mates change", base_inputs, batch)
    for own in owned:
        alone = _alone_difference(ctx, base, base_inputs, dims, own, layouts, batch)
        if alone:
            return _mixing_failure(ctx, alone, base_inputs, batch)
    if all(dims_ == 0 for dims_ in dims.values()):
        first = {p for p in paths if (leaf := layouts[p]) is not None
                 and leaf.dim == 0 and leaf.factor == 1}
        for k in positions:
            try:
                leaked = batch_mixing.gradient_leak(ctx, base_inputs, batch, first, k)
            except Exception:  # a backward that fails is training.gradients' verdict
                leaked = None
            if leaked:
                return _mixing_failure(ctx, leaked, base_inputs, batch)
    shown = ", ".join(map(str, positions))
    return passed(f"samples {shown} of a batch of {batch} each own output elements no batch "
                  "mate moves, the same as on their own")


def _alone_difference(ctx: CheckContext, base: Any, inputs: Inputs, dims: dict[str, int],
                      own: influence.Ownership, layouts: dict[str, layout.LeafLayout | None],
                      batch: int) -> str | None:
    """Where sample ``k``'s owned elements differ from its output on its own."""
    single = _single_sample_output(ctx, inputs, dims, batch, own.k)
    if single is None:
        return None
    single_leaves = dict(leaves(single))
    for path, tensor in leaves(base):
        leaf = layouts.get(path)
        alone = single_leaves.get(path)
        if leaf is None or leaf.dim is None or alone is None or path not in own.own:
            continue
        rows = influence.owned_rows(own.own[path], leaf.dim)
        if alone.dim() != tensor.dim() or len(rows) != alone.shape[leaf.dim]:
            continue
        picked = tensor.index_select(leaf.dim, torch.tensor(rows))
        if picked.is_floating_point() and bool(influence.differs(ctx, picked, alone).any()):
            largest = float((picked.double() - alone.double()).abs().nan_to_num().max())
            return (f"{path} of sample {own.k} differs by {largest:.3g} between a batch of "
                    f"{batch} and the sample on its own")
    return None


def _output_at(ctx: CheckContext, batch: int) -> Any:
    try:
        return ctx.eval_output(batch)
    except DependencyFailed:
        raise
    except Exception as exc:
        raise DependencyFailed(f"not run: the forward fails at batch size {batch}: "
                               f"{one_line(exc)} (see forward.batch_sizes)") from exc


def _single_sample_output(ctx: CheckContext, inputs: Inputs, dims: dict[str, int],
                          batch: int, k: int) -> Any:
    """Sample ``k`` on its own; None when batch size 1 fails (forward.batch_sizes'
    verdict, not this check's)."""
    seed_everything(derived_seed(ctx.seed, "eval", batch, 0))
    try:
        with torch.no_grad():
            return ctx.call(ctx.model.eval(), influence.one_sample(inputs, dims, k))
    except Exception:
        return None


def _mixing_failure(ctx: CheckContext, what: str, inputs: Inputs, batch: int) -> Outcome:
    module = batch_mixing.module_culprit(ctx, inputs, batch)
    if module is not None:
        return failed(f"{what} in eval mode: {module[0]}", where=module[1])
    found = batch_mixing.op_culprit(ctx, inputs, batch)
    culprit = f"; likely at {found[0]}" if found else ""
    return failed(
        f"{what} in eval mode{culprit}: the model mixes samples across the batch — a "
        "view/reshape/transpose that moves the batch dim, a softmax/mean/sum over dim 0, or "
        "batch statistics in eval mode",
        where=found[1] if found else None,
    )


KNOWN_WARNINGS = {
    "To copy construct from a tensor": "torch.tensor(t) copies t out of the autograd graph, "
    "so nothing before it gets a gradient: use t.clone() or t.to(dtype)",
}


@check("forward.warnings")
def forward_warning(ctx: CheckContext) -> Outcome:
    caught, error = forward_warnings(ctx)
    if not caught:
        if error is not None:
            ctx.eval_output()  # forward.runs owns the failure
        return passed("the forward raises no warning from your code")
    first = caught[0]
    assert first.where is not None
    hint = next((f" — {fix}" for key, fix in KNOWN_WARNINGS.items()
                 if key in first.message), "")
    return warned(
        f"the forward raised {len(caught)} warning(s), first at {first.where[0]}:"
        f"{first.where[1]}: {first.category}: {first.message}{hint}",
        "\n".join(f"{w.where[0]}:{w.where[1]}: {w.category}: {w.message}" for w in caught
                   if w.where is not None),
        first.where,
    )
