"""Is the loss the loss the model needs? What training.loss_sanity reads, and the loss
causes training.loss and training.gradients name.

One training forward of a fresh copy is replayed with torch's loss functions recorded
(what each was fed and returned) and the warnings they raise; the gradient of the loss
with respect to every output shows which outputs it ignores. Each finding is a plain
function of that probe, so a check of another area (learning.output_vs_loss) can call the
same one:

- :func:`target_broadcast` — an elementwise loss whose output and target broadcast into
  a cross product (MSELoss on (B, 1) against (B,));
- :func:`single_class` — cross-entropy over a class dimension of size 1 (always 0);
- :func:`below_floor` — NLL fed raw scores, or a CE/NLL/BCE/KL value below 0;
- :func:`ignored_outputs` — parameters that only feed outputs the loss never reads;
- :func:`sums_over_batch` — a loss that doubles when the batch is duplicated.
"""

from __future__ import annotations

import fnmatch
import math
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from ...unit import optrace
from ...unit.context import CheckContext
from ...unit.inputs import Inputs, auto_target
from ...unit.pytree import floating_leaves, map_tensors
from ...unit.seeding import derived_seed, seed_everything
from ...unit.text import shape_str
from ...verdict import DependencyFailed, Skip
from .forward_warnings import CaughtWarning, capture_warnings
from .training_run import training_trace

ELEMENTWISE = {"mse_loss", "l1_loss", "smooth_l1_loss", "huber_loss", "binary_cross_entropy",
               "binary_cross_entropy_with_logits", "soft_margin_loss", "kl_div",
               "poisson_nll_loss"}
CLASS_LOSSES = {"cross_entropy", "nll_loss"}
FLOORED = {"cross_entropy", "nll_loss", "binary_cross_entropy",
           "binary_cross_entropy_with_logits", "kl_div"}
LOSS_FUNCTIONS = ELEMENTWISE | CLASS_LOSSES | {"gaussian_nll_loss", "multilabel_soft_margin_loss",
                                               "multi_margin_loss", "margin_ranking_loss"}


@dataclass
class LossCall:
    name: str
    input: torch.Tensor
    target: torch.Tensor | None
    kwargs: dict[str, Any]
    value: float | None  # None when it raised or did not reduce to a scalar


class LossRecorder(optrace.TorchFunctionMode):
    """Records every call of a torch loss function (``F.*`` and the ``nn.*Loss`` modules
    that call them) with what it was fed; ``before`` keeps the call that raises."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[LossCall] = []

    def __torch_function__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        kwargs = kwargs or {}
        name = optrace.op_name(func)
        if name not in LOSS_FUNCTIONS or not args or not isinstance(args[0], torch.Tensor):
            return func(*args, **kwargs)
        target = args[1] if len(args) > 1 and isinstance(args[1], torch.Tensor) else (
            kwargs.get("target"))
        call = LossCall(name, args[0].detach(), target.detach() if isinstance(
            target, torch.Tensor) else None, {k: v for k, v in kwargs.items()
                                              if isinstance(v, (str, int, float, bool))}, None)
        self.calls.append(call)
        out = func(*args, **kwargs)
        if isinstance(out, torch.Tensor) and out.dim() == 0:
            call.value = float(out.detach())
        return out


@dataclass
class LossProbe:
    """One training forward + loss on a fresh copy, and what the loss did with it."""

    value: float
    calls: list[LossCall]
    warnings: list[CaughtWarning]
    ignored: list[str] = field(default_factory=list)  # output leaves without gradient
    starved: list[str] = field(default_factory=list)  # parameters only they feed


def probe(ctx: CheckContext) -> LossProbe:
    """Memoised; a loss that fails to compute is training.loss's verdict."""

    def compute() -> LossProbe:
        spec = ctx.spec
        if spec is None or not spec.has_real_loss:
            raise Skip("no loss or step declared: the surrogate loss is torchvet's own")
        trace = training_trace(ctx)
        if trace.failure is not None and trace.failure.stage == "loss" and not trace.losses:
            raise DependencyFailed("not run: the loss cannot be computed (see training.loss)")
        seed_everything(derived_seed(ctx.seed, "train"))
        model = ctx.fresh_copy().train()
        outputs: list[Any] = []
        hook = model.register_forward_hook(lambda _m, _a, out: outputs.append(out))
        recorder = LossRecorder()
        batch = ctx.train_batch_size
        try:
            with capture_warnings(ctx) as caught, recorder:
                loss = ctx.training_loss(model, ctx.inputs(batch), ctx.target(batch))
        finally:
            hook.remove()
        found = LossProbe(float(loss.detach()), recorder.calls, caught)
        if isinstance(loss, torch.Tensor) and loss.requires_grad:
            _find_ignored(ctx, model, loss, outputs, found)
        return found

    return ctx.memo("loss-probe", compute)


def _find_ignored(ctx: CheckContext, model: nn.Module, loss: torch.Tensor,
                  outputs: list[Any], found: LossProbe) -> None:
    leaves = [(p, t) for out in outputs[-1:] for p, t in floating_leaves(out) if t.requires_grad]
    if len(leaves) < 2:
        return
    grads = torch.autograd.grad(loss, [t for _, t in leaves], allow_unused=True,
                                retain_graph=True)
    ignored = [(p, t) for (p, t), g in zip(leaves, grads, strict=True)
               if g is None or not bool(g.ne(0).any())]
    if not ignored:
        return
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    params = [p for _, p in named]
    from_loss = torch.autograd.grad(loss, params, allow_unused=True, retain_graph=True)
    gen = torch.Generator().manual_seed(derived_seed(ctx.seed, "ignored-outputs"))
    probe_sum = torch.stack([(t * torch.randn(tuple(t.shape), generator=gen).to(t)).sum()
                             for _, t in ignored]).sum()
    from_ignored = torch.autograd.grad(probe_sum, params, allow_unused=True, retain_graph=True)
    found.ignored = [p for p, _ in ignored]
    found.starved = [n for (n, _), a, b in zip(named, from_loss, from_ignored, strict=True)
                     if (a is None or not bool(a.ne(0).any()))
                     and b is not None and bool(b.ne(0).any())]


# --------------------------------------------------------------------------- findings


def target_broadcast(found: LossProbe) -> str | None:
    """An elementwise loss whose output and target broadcast into a cross product."""
    for call in found.calls:
        if call.name not in ELEMENTWISE or call.target is None:
            continue
        a, b = tuple(call.input.shape), tuple(call.target.shape)
        if a == b:
            continue
        try:
            joint = tuple(torch.broadcast_shapes(a, b))
        except RuntimeError:
            continue
        if math.prod(joint) > max(math.prod(a), math.prod(b)):
            return (f"{call.name} compares the output {shape_str(a)} with the target "
                    f"{shape_str(b)}: they broadcast to {shape_str(joint)}, so every output is "
                    "compared with every target and the loss is wrong; make the shapes equal "
                    "(target.view_as(output), or output.squeeze(-1))")
    broadcast = next((w for w in found.warnings if "broadcasting" in w.message), None)
    if broadcast is not None:
        return f"the loss warns: {broadcast.message}: make output and target the same shape"
    return None


def single_class(found: LossProbe) -> str | None:
    """Cross-entropy over one class: softmax over a size-1 dimension is 1, the loss 0."""
    for call in found.calls:
        if call.name == "cross_entropy" and call.input.dim() >= 2 and call.input.shape[1] == 1:
            return (f"cross_entropy gets {shape_str(call.input.shape)}: one class (a single "
                    "logit per sample), so softmax is always 1, the loss always 0 and no "
                    "gradient flows; for a binary target use BCEWithLogitsLoss with float "
                    "0/1 targets, or output 2 logits")
    return None


def below_floor(found: LossProbe) -> str | None:
    """NLL fed raw scores, or a loss that has a floor of 0 measured below it."""
    for call in found.calls:
        if call.name == "nll_loss" and call.input.dim() >= 2 and call.input.is_floating_point():
            lse = torch.logsumexp(call.input.double(), dim=1)
            worst = float(lse.abs().max())
            if worst > 1e-3:
                top = float(call.input.max())
                return (f"nll_loss is fed scores that are not log-probabilities (a row's "
                        f"logsumexp is {float(lse.flatten()[lse.flatten().abs().argmax()]):.3g}"
                        f", not 0; values up to {top:.3g}): the loss can fall below 0 and "
                        "become negative without bound as the scores grow; apply "
                        "log_softmax first (nn.LogSoftmax(dim=1)), or use CrossEntropyLoss on "
                        "the raw logits")
    for call in found.calls:
        if call.name in FLOORED and call.value is not None and call.value < -1e-6:
            return (f"{call.name} returned {call.value:.4g}, a negative value, though it "
                    "cannot be below 0 for valid inputs: check that it gets logits (or "
                    "log-probabilities for nll/kl_div) and targets of the kind it expects")
    return None


def ignored_outputs(ctx: CheckContext, found: LossProbe) -> tuple[str, list[str]] | None:
    """(message, parameters) when parameters only feed outputs the loss ignores."""
    spec = ctx.spec
    exempt = (spec.unused + spec.frozen) if spec is not None else ()
    starved = [n for n in found.starved if not _matches(n, exempt)]
    if not starved:
        return None
    shown = ", ".join(starved[:5]) + (f" and {len(starved) - 5} more" if len(starved) > 5
                                      else "")
    outputs = ", ".join(found.ignored)
    return (f"the loss ignores {outputs} (its gradient there is zero), so {shown}, which only "
            f"feed {'it' if len(found.ignored) == 1 else 'them'}, never learn: add its term to "
            "the loss (e.g. + 0.4 * criterion(aux_out, y)) or stop computing it", starved)


def _matches(name: str, patterns: Any) -> bool:
    return any(fnmatch.fnmatchcase(name, p) for p in patterns)


def sums_over_batch(ctx: CheckContext) -> str | None:
    """The loss of a batch given twice over, against the batch once: a mean stays, a sum
    doubles. Eval mode, so dropout does not blur it; a declared ``loss`` only (a ``step``
    may train or need train mode); None when neither holds exactly or it cannot run."""
    spec = ctx.spec
    if spec is None or spec.loss is None or spec.step is not None:
        return None
    batch = ctx.train_batch_size
    seed_everything(derived_seed(ctx.seed, "loss-sum"))
    try:
        once, twice = _once_and_twice(ctx, spec.loss, batch)
    except Exception:  # a loss that only works on train-mode outputs: no verdict here
        return None
    if not (math.isfinite(once) and math.isfinite(twice)) or abs(once) < 1e-6:
        return None
    if abs(twice / once - 2.0) < 1e-3:
        return (f"the loss doubles when the batch is given twice over ({once:.4g} -> "
                f"{twice:.4g}): it sums over the batch (reduction='sum'), so the gradient, and "
                "in effect the learning rate, grows with the batch size; use "
                "reduction='mean' (or divide by the batch size)")
    return None


def _once_and_twice(ctx: CheckContext, loss_fn: Any, batch: int) -> tuple[float, float]:
    inputs, target = ctx.inputs(batch), ctx.target(batch)
    model = ctx.model.eval()
    with torch.no_grad():
        out = ctx.call(model, inputs)
        if target is None and isinstance(out, torch.Tensor):
            target = auto_target(loss_fn, out, ctx.seed, ctx.spec.num_classes if ctx.spec
                                 else None)
        once = ctx.loss_of(out, target)
        twice = ctx.loss_of(ctx.call(model, _doubled(inputs, batch)), _doubled(target, batch))
    return float(once), float(twice)


def _doubled(value: Any, batch: int) -> Any:
    if value is None:
        return None
    if isinstance(value, Inputs):
        return value.map(lambda t: _twice(t, batch))
    return map_tensors(value, lambda t: _twice(t, batch))


def _twice(t: torch.Tensor, batch: int) -> torch.Tensor:
    return torch.cat([t, t]) if t.dim() >= 1 and t.shape[0] == batch else t


# --------------------------------------------------------------------------- loss errors


def class_dim_last(ctx: CheckContext, inputs: Inputs, target: Any) -> str | None:
    """cross_entropy/nll_loss fed (B, T, C) against (B, T): the classes are last."""
    recorder = LossRecorder()
    model = ctx.fresh_copy().train()
    try:
        with recorder:
            ctx.training_loss(model, inputs, target)
    except Exception:
        pass
    for call in recorder.calls:
        if call.name not in CLASS_LOSSES or call.target is None or call.input.dim() < 3:
            continue
        shape, wanted = tuple(call.input.shape), tuple(call.target.shape)
        if wanted == shape[:-1] and shape[1] != shape[-1]:
            classes = shape[-1]
            return (f"{call.name} wants the classes in dim 1, but gets the output "
                    f"{shape_str(shape)} with the target {shape_str(wanted)}: the {classes} "
                    "classes are in the last dim; pass output.transpose(1, 2) (or flatten "
                    f"both: output.reshape(-1, {classes}), target.reshape(-1))")
    return None


def grad_disabled(locator_ctx: CheckContext, inputs: Inputs, target: Any
                  ) -> tuple[str, tuple[str, int]] | None:
    """The first op of the training forward that runs with autograd off, and why."""

    def predicate(name: str, args: tuple[Any, ...], kwargs: dict[str, Any], out: Any
                  ) -> str | None:
        if torch.is_inference_mode_enabled():
            return "torch.inference_mode() is active"
        if not torch.is_grad_enabled():
            return "gradients are disabled (torch.no_grad() or torch.set_grad_enabled(False))"
        if name in ("detach", "detach_"):
            return f"{name}() cuts the graph"
        return None

    model = locator_ctx.fresh_copy().train()
    return optrace.trace(lambda: locator_ctx.training_loss(model, inputs, target), predicate,
                         locator_ctx.locator)
