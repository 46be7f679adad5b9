"""forward.*: what an eval-mode forward pass must get right."""

from __future__ import annotations

import traceback
import weakref
from typing import Any

import torch

from ..unit import optrace
from ..unit.context import CheckContext
from ..unit.inputs import Inputs
from ..unit.pytree import floating_leaves, leaves, primary_leaf, structure
from ..unit.seeding import derived_seed, seed_everything
from .base import Outcome, Skip, check, failed, passed, warned
from .text import dtype_name, index_str, one_line, shape_str

BATCH_SIZES = (1, 2, 3)


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
        return failed(
            f"the forward pass raised {one_line(exc)} (inputs: {ctx.inputs().describe()})",
            traceback.format_exc(),
            ctx.where_exception(exc),
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
    found = replay(ctx, optrace.nonfinite_from_finite)
    culprit = f"; first at {found[0]}" if found else ""
    return failed(
        f"{problems[0]}{culprit}: look for log/sqrt of values that can be 0 or negative, "
        "division by zero, or exp/pow overflow (clamp the input or use a stable form such "
        "as log_softmax)",
        "\n".join(problems),
        found[1] if found else None,
    )


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
    if actual and actual[0] == ctx.batch_size:
        return passed(f"{path} has shape {shape_str(actual)}")
    return failed(
        f"{path} has shape {shape_str(actual)} at batch size {ctx.batch_size}: dim 0 should "
        "be the batch size; a view/reshape with a hard-coded size or a .squeeze() dropped or "
        "moved it (if the layout is intended, declare output_shape)"
    )


def _outputs_by_size(ctx: CheckContext) -> dict[int, Any]:
    """Eval outputs at batch sizes 1, 2, 3 (and the standard size); exceptions kept."""

    def compute() -> dict[int, Any]:
        results: dict[int, Any] = {}
        for size in sorted({*BATCH_SIZES, ctx.batch_size}):
            try:
                results[size] = ctx.eval_output(size)
            except Exception as exc:
                results[size] = exc
        return results

    return ctx.memo("outputs-by-size", compute)


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
    primary = primary_leaf(base)
    structures = {size: [p for p, _ in leaves(out)] for size, out in outputs.items()}
    for size, paths in structures.items():
        if paths != structures[ctx.batch_size]:
            return failed(
                f"the output structure changes with the batch size: {structure(outputs[size])} "
                f"at batch size {size} vs {structure(base)} at {ctx.batch_size}"
            )
    problems = []
    for path, base_tensor in leaves(base):
        base_shape = tuple(base_tensor.shape)
        by_size = {size: tuple(dict(leaves(out))[path].shape) for size, out in outputs.items()}
        if all(len(s) >= 1 and s[0] == size and s[1:] == base_shape[1:]
               for size, s in by_size.items()):
            continue
        is_primary = primary is not None and path == primary[0]
        if len(set(by_size.values())) == 1 and not is_primary:
            continue  # an output that does not depend on the batch (e.g. RNN h_n layers)
        size, shp = next((size, s) for size, s in sorted(by_size.items())
                         if not (len(s) >= 1 and s[0] == size and s[1:] == base_shape[1:]))
        problems.append(
            f"{path} has shape {shape_str(shp)} at batch size {size} "
            f"(shape {shape_str(base_shape)} at batch size {ctx.batch_size})"
        )
    if problems:
        found = replay(ctx, optrace.squeezed_batch, ctx.inputs(1)) if 1 in outputs else None
        culprit = f"; {found[0]}" if found else ""
        return failed(
            f"{problems[0]}{culprit}: dim 0 must follow the batch size; a .squeeze() drops it "
            "at batch size 1 (use .squeeze(-1) or .flatten(1)), a hard-coded size in "
            "view/reshape fixes it (use x.shape[0] or -1)",
            "\n".join(problems),
            found[1] if found else None,
        )
    return passed(f"batch sizes {', '.join(map(str, sorted(outputs)))} scale dim 0")


def mix_inputs(keep: Inputs, other: Inputs, batch: int) -> Inputs:
    """Sample 0 from ``keep``, the rest from ``other`` (tensors batched along dim 0)."""
    other_tensors = iter([t for _, t in other.tensors()])

    def pick(t: torch.Tensor) -> torch.Tensor:
        o = next(other_tensors)
        if t.dim() >= 1 and t.shape[0] == batch and o.shape == t.shape:
            return torch.cat([t[:1], o[1:]])
        return t

    return keep.map(pick)


def first_sample(inputs: Inputs, batch: int) -> Inputs:
    return inputs.map(lambda t: t[:1] if t.dim() >= 1 and t.shape[0] == batch else t)


def _compare_sample(ctx: CheckContext, ref: Any, new: Any, paths: set[str], sample_slice: slice
                    ) -> tuple[str, float] | None:
    new_leaves = dict(leaves(new))
    for path, tensor in leaves(ref):
        if path not in paths or path not in new_leaves or not tensor.is_floating_point():
            continue
        a, b = tensor[sample_slice], new_leaves[path][sample_slice]
        if a.shape != b.shape:
            return f"{path}[0] changes shape {shape_str(a.shape)} -> {shape_str(b.shape)}", 0.0
        atol, rtol = ctx.tolerance(tensor.dtype, cross_batch=True)
        diff = (a.double() - b.double()).abs()
        allowed = atol + rtol * b.double().abs()
        if bool((diff > allowed).any()) or not bool(torch.isfinite(a).eq(torch.isfinite(b)).all()):
            return f"{path}[0]", float(diff.max())
    return None


@check("forward.batch_independence")
def batch_independence(ctx: CheckContext) -> Outcome:
    ctx.eval_output()
    batch = max(2, ctx.batch_size)
    paths = batched_paths(ctx)
    if not paths:
        raise Skip("no output follows the batch dimension")
    model = ctx.model.eval()
    base_inputs = ctx.inputs(batch)
    with torch.no_grad():
        base = ctx.eval_output(batch)
        mixed_inputs = mix_inputs(base_inputs, ctx.inputs(batch, variant=1), batch)
        seed_everything(derived_seed(ctx.seed, "eval", batch, 0))
        mixed = ctx.call(model, mixed_inputs)
    changed = _compare_sample(ctx, base, mixed, paths, slice(0, 1))
    if changed:
        return _mixing_failure(
            ctx, f"{changed[0]} changes by {changed[1]:.3g} when the other samples in the batch "
            "change", base_inputs, batch)
    single = _single_sample_output(ctx, base_inputs, batch)
    if single is not None:
        alone = _compare_sample(ctx, base, single, paths & batched_paths_of(single), slice(0, 1))
        if alone:
            return _mixing_failure(
                ctx, f"{alone[0]} differs by {alone[1]:.3g} between a batch of {batch} and the "
                "sample on its own", base_inputs, batch)
    try:
        leaked = _gradient_leak(ctx, base_inputs, batch, paths)
    except Exception:  # a backward that fails is training.gradients' verdict
        leaked = None
    if leaked:
        return _mixing_failure(ctx, leaked, base_inputs, batch)
    return passed(f"sample 0 is unaffected by its {batch - 1} batch mate(s)")


def _single_sample_output(ctx: CheckContext, inputs: Inputs, batch: int) -> Any:
    """The first sample on its own; None when batch size 1 fails (forward.batch_sizes'
    verdict, not this check's)."""
    seed_everything(derived_seed(ctx.seed, "eval", batch, 0))
    try:
        with torch.no_grad():
            return ctx.call(ctx.model.eval(), first_sample(inputs, batch))
    except Exception:
        return None


def batched_paths_of(out: Any) -> set[str]:
    return {p for p, t in leaves(out) if t.dim() >= 1 and t.shape[0] == 1}


def _gradient_leak(ctx: CheckContext, inputs: Inputs, batch: int, paths: set[str]) -> str | None:
    """Exact test for float inputs: d(sample 0's outputs)/d(other samples) must be 0."""
    watched: list[tuple[str, torch.Tensor]] = []
    names = iter([p for p, _ in inputs.tensors()])

    def watch(t: torch.Tensor) -> torch.Tensor:
        name = next(names)
        if t.is_floating_point() and t.dim() >= 1 and t.shape[0] == batch:
            leaf = t.detach().clone().requires_grad_(True)
            watched.append((name, leaf))
            return leaf
        return t

    probe = inputs.map(watch)
    if not watched:
        return None
    model = ctx.model.eval()
    seed_everything(derived_seed(ctx.seed, "eval", batch, 0))
    with torch.enable_grad():
        out = ctx.call(model, probe)
        total = None
        for path, tensor in leaves(out):
            if path in paths and tensor.is_floating_point() and tensor.requires_grad:
                gen = torch.Generator().manual_seed(derived_seed(ctx.seed, "leak", path))
                weight = torch.randn(tuple(tensor[:1].shape), generator=gen).to(tensor)
                term = (tensor[:1] * weight).sum()
                total = term if total is None else total + term
        if total is None:
            return None
        grads = torch.autograd.grad(total, [t for _, t in watched], allow_unused=True)
    for (name, _), grad in zip(watched, grads, strict=False):
        if grad is not None and bool(grad[1:].ne(0).any()):
            sample = int(grad[1:].flatten(1).ne(0).any(1).nonzero()[0]) + 1
            return (
                f"the gradient of sample 0's outputs reaches input sample {sample} "
                f"({name}): outputs depend on other samples of the batch"
            )
    return None


def _mixing_failure(ctx: CheckContext, what: str, inputs: Inputs, batch: int) -> Outcome:
    found = replay(ctx, optrace.batch_mixing(batch), inputs)
    culprit = f"; likely at {found[0]}" if found else ""
    return failed(
        f"{what} in eval mode{culprit}: the model mixes samples across the batch — a "
        "view/reshape/transpose that moves the batch dim, a softmax/mean/sum over dim 0, or "
        "batch statistics in eval mode",
        where=found[1] if found else None,
    )


@check("forward.determinism")
def determinism(ctx: CheckContext) -> Outcome:
    first = ctx.eval_output()
    model = ctx.model.eval()
    seed_everything(derived_seed(ctx.seed, "determinism-second-pass"))
    with torch.no_grad():
        second = ctx.call(model, ctx.inputs())
    second_leaves = dict(leaves(second))
    for path, tensor in floating_leaves(first):
        other = second_leaves.get(path)
        if other is None or other.shape != tensor.shape:
            return failed(f"{path} changes shape between two eval passes on the same input")
        atol, rtol = ctx.tolerance(tensor.dtype)
        both_nan = torch.isnan(tensor) & torch.isnan(other)
        diff = (tensor.double() - other.double()).abs().masked_fill(both_nan, 0)
        if bool((diff > atol + rtol * other.double().abs()).any()):
            found = replay(ctx, optrace.random_op)
            culprit = f"; {found[0]}" if found else ""
            return failed(
                f"{path} differs by {float(diff.nan_to_num(float('inf')).max()):.3g} between "
                f"two eval passes on the same input{culprit}: randomness in eval mode — "
                "F.dropout(x, p) without training=self.training, or noise added without "
                "`if self.training:`",
                where=found[1] if found else None,
            )
    return passed("two eval passes agree")


LOGIT_LOSSES = {
    "cross_entropy": "CrossEntropyLoss / F.cross_entropy",
    "binary_cross_entropy_with_logits": "BCEWithLogitsLoss / F.binary_cross_entropy_with_logits",
}
PROBABILITY_OPS = {"softmax", "sigmoid"}


class _LossCapture(optrace.TorchFunctionMode):
    """Records what logit losses are fed, and whether a softmax/sigmoid produced it."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[tuple[str, torch.Tensor, Any]] = []
        self.fed_probabilities: set[int] = set()  # indices into calls
        # Weak references, checked for identity: an id alone is reused once an
        # intermediate (an attention softmax) is freed, and a later logits tensor may get it.
        self._probability_outputs: dict[int, weakref.ref[torch.Tensor]] = {}

    def __torch_function__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        name = optrace.op_name(func)
        if name in PROBABILITY_OPS and isinstance(out, torch.Tensor):
            self._probability_outputs[id(out)] = weakref.ref(out)
        if name in LOGIT_LOSSES and args and isinstance(args[0], torch.Tensor):
            ref = self._probability_outputs.get(id(args[0]))
            if ref is not None and ref() is args[0]:
                self.fed_probabilities.add(len(self.calls))
            self.calls.append((name, args[0].detach(), out))
        return out


def capture_loss_calls(ctx: CheckContext, batch: int) -> _LossCapture:
    """Eval forward + the declared loss under a capture of logit-loss calls."""

    def compute() -> _LossCapture:
        if ctx.spec is None or not ctx.spec.has_real_loss:
            raise Skip("no loss or step declared: nothing feeds a logit loss")
        capture = _LossCapture()
        model = ctx.model.eval()
        inputs, target = ctx.inputs(batch), ctx.target(batch)
        seed_everything(derived_seed(ctx.seed, "loss-capture", batch))
        with torch.no_grad(), capture:
            ctx.training_loss(model, inputs, target)
        return capture

    return ctx.memo(("loss-capture", batch), compute)


def looks_like_probabilities(index: int, capture: _LossCapture) -> bool:
    """Whether the ``index``-th logit-loss call was fed a softmax/sigmoid output, or (for
    cross_entropy) values in [0, 1] that sum to 1 over the class dimension."""
    name, logits, _ = capture.calls[index]
    if index in capture.fed_probabilities:
        return True
    if name == "cross_entropy" and logits.dim() >= 2 and logits.is_floating_point():
        in_range = bool(((logits >= 0) & (logits <= 1)).all())
        sums = logits.double().sum(1)
        return in_range and bool(torch.allclose(sums, torch.ones_like(sums), atol=1e-4))
    return False


@check("forward.probabilities")
def probabilities(ctx: CheckContext) -> Outcome:
    capture = capture_loss_calls(ctx, ctx.train_batch_size)
    relevant = [k for k, (n, _, _) in enumerate(capture.calls) if n in LOGIT_LOSSES]
    if not relevant:
        raise Skip("the loss calls neither cross_entropy nor binary_cross_entropy_with_logits")
    for index in relevant:
        name = capture.calls[index][0]
        if looks_like_probabilities(index, capture):
            return warned(
                f"{LOGIT_LOSSES[name]} is fed probabilities (values in [0, 1]"
                f"{' summing to 1' if name == 'cross_entropy' else ''}), but it applies "
                "(log-)softmax/sigmoid itself: return raw logits from the model and apply "
                "softmax/sigmoid only at inference"
            )
    return passed("the logit loss receives logits")

