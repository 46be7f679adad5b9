"""Short runs with the user's own loss, optimizer and data, counted in steps.

- :func:`rate_run`: the declared optimizer (at its rate, or a tenth of it) on one fixed
  batch: does the loss diverge, crawl, or move; how far did each layer move on the first
  step.
- :func:`progress_run`: the declared optimizer on the dataset's batches, judged on held-out
  samples against the best constant prediction (the mean, the majority class).

Every run is seeded and decided by step counts, never by the clock, so a verdict does not
depend on the machine's load; the check's time budget only turns a run that truly runs out
into a skip.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from ...unit.context import CheckContext
from ...unit.data_batches import DatasetSource, collate, is_iterable, split_sample, stream_samples
from ...unit.inputs import Inputs
from ...unit.optim import Adam
from ...unit.pytree import leaves, primary_leaf
from ...unit.seeding import derived_seed, seed_everything
from ..base import DependencyFailed, Skip
from ..text import one_line
from .probe import PROBE_MAX_PARAMS, WEIGHT_LAYERS, init_probe

RATE_STEPS = 50
LARGE_MODEL_RATE_STEPS = 10  # above PROBE_MAX_PARAMS: a step of a large model is costly
EVAL_EVERY = 20
EVAL_SAMPLES = 128


@dataclass
class RateRun:
    """The declared optimizer on one fixed batch."""

    scale: float
    optimizer: str  # "SGD(lr=0.5, momentum=0.999)"
    groups: list[dict[str, Any]]  # lr, momentum, weight_decay, ... and the group's names
    losses: list[float] = field(default_factory=list)
    first_update: dict[str, float] = field(default_factory=dict)  # layer -> |dW| / |W|
    declared: bool = True  # False: torchvet's default Adam
    shrink: list[float] = field(default_factory=list)  # per group: ||w|| at the end / start

    @property
    def finite(self) -> bool:
        return all(math.isfinite(v) for v in self.losses)


def make_optimizer(ctx: CheckContext, model: nn.Module) -> tuple[Any, bool]:
    """The spec's optimizer on ``model`` (else torchvet's default Adam lr 1e-3)."""
    spec = ctx.spec
    assert spec is not None
    if spec.optimizer is None:
        return Adam(model.parameters(), lr=1e-3), False
    try:
        return spec.optimizer(model.parameters()), True
    except Exception as exc:
        raise DependencyFailed(f"not run: the optimizer raised {one_line(exc)} (see "
                               "training.update)") from exc


def describe_optimizer(optimizer: Any) -> str:
    group = optimizer.param_groups[0] if optimizer.param_groups else {}
    shown = []
    for key in ("lr", "momentum", "weight_decay"):
        value = group.get(key)
        if isinstance(value, (int, float)) and (key == "lr" or value):
            shown.append(f"{key}={value:g}")
    return f"{type(optimizer).__name__}({', '.join(shown)})"


def rate_steps(ctx: CheckContext) -> int:
    params = sum(p.numel() for p in ctx.model.parameters())
    return RATE_STEPS if params <= PROBE_MAX_PARAMS else LARGE_MODEL_RATE_STEPS


def rate_run(ctx: CheckContext, scale: float = 1.0) -> RateRun:
    """Memoised: the declared optimizer, its rates times ``scale``, for a number of steps
    fixed by the model's size."""
    steps = rate_steps(ctx)
    return ctx.memo(("learning-rate-run", scale, steps), lambda: _rate_run(ctx, scale, steps))


def _rate_run(ctx: CheckContext, scale: float, steps: int) -> RateRun:
    init_probe(ctx)  # a step that cannot run is the probe's skip
    batch = ctx.train_batch_size
    inputs, target = ctx.inputs(batch), ctx.target(batch)
    seed_everything(derived_seed(ctx.seed, "learning-rate", scale))
    model = ctx.fresh_copy().train()
    optimizer, declared = make_optimizer(ctx, model)
    for group in optimizer.param_groups:
        group["lr"] = group["lr"] * scale
    names = {id(p): n for n, p in model.named_parameters()}
    groups = [{**{k: v for k, v in g.items() if isinstance(v, (int, float, bool, tuple))},
               "names": [names.get(id(p), "?") for p in g["params"]]}
              for g in optimizer.param_groups]
    run = RateRun(scale, describe_optimizer(optimizer), groups, declared=declared)
    layers = [(n, m) for n, m in model.named_modules() if isinstance(m, WEIGHT_LAYERS)]
    start = [_group_norm(g) for g in optimizer.param_groups]
    for step in range(steps + 1):
        optimizer.zero_grad(set_to_none=True)
        loss = ctx.training_loss(model, inputs, target)
        value = float(loss.detach())
        run.losses.append(value)
        if not math.isfinite(value) or step == steps:
            break
        before = [_weights(m) for _, m in layers] if step == 0 else []
        loss.backward()
        optimizer.step()
        if step == 0:
            run.first_update = {n: _moved(b, _weights(m)) for (n, m), b in zip(layers, before,
                                                                           strict=True)}
    run.shrink = [_group_norm(g) / s if s > 0 else 1.0
                  for g, s in zip(optimizer.param_groups, start, strict=True)]
    return run


def _group_norm(group: dict[str, Any]) -> float:
    return math.sqrt(sum(float(p.detach().float().pow(2).sum()) for p in group["params"]))


def _weights(module: nn.Module) -> torch.Tensor:
    tensors = [p.detach().flatten().float() for p in module.parameters(recurse=False)
               if p.requires_grad]
    return torch.cat(tensors).clone() if tensors else torch.zeros(0)


def _moved(before: torch.Tensor, after: torch.Tensor) -> float:
    norm = float(before.norm())
    return float((after - before).norm()) / norm if norm > 0 else math.nan


# --------------------------------------------------------------------------- progress

PROGRESS_CHUNK = 200  # steps between decisions to go on
PROGRESS_MAX = 800
BEAT = 0.05  # share of the baseline the held-out loss must beat it by (128 samples: ~4 SE)
FALLING = 0.01  # relative fall of the training loss over a window that counts as learning
WINDOW = 40


@dataclass
class ProgressRun:
    """The declared optimizer over the dataset's batches, judged on held-out samples."""

    train_samples: int
    eval_samples: int
    held_out: bool
    baseline: float | None  # loss of the best constant prediction on the held-out samples
    baseline_kind: str  # "the mean target", "the class frequencies", ...
    eval_losses: list[tuple[int, float]] = field(default_factory=list)  # (step, loss)
    train_losses: list[float] = field(default_factory=list)
    outcome: str = ""  # beaten | memorising | stuck | falling | diverged

    @property
    def steps(self) -> int:
        return len(self.train_losses)

    @property
    def goal(self) -> float:
        """The held-out loss that counts as learning: under the baseline, or (without
        one) under the loss at init, by BEAT of it."""
        reference = self.baseline if self.baseline is not None else self.eval_losses[0][1]
        return reference - BEAT * abs(reference)


def progress_run(ctx: CheckContext) -> ProgressRun:
    return ctx.memo("learning-progress-run", lambda: _progress_run(ctx))


def _progress_run(ctx: CheckContext) -> ProgressRun:
    spec = ctx.spec
    assert spec is not None
    source = spec.inputs
    if not isinstance(source, DatasetSource) or spec.loss is None or spec.step is not None:
        raise Skip("needs a dataset and a declared loss")
    init_probe(ctx)
    pool = _pool(ctx, source)
    held_out = len(pool) >= 4 * ctx.train_batch_size
    n_eval = min(EVAL_SAMPLES, len(pool) // 2) if held_out else len(pool)
    evaluation, train = pool[:n_eval], (pool[n_eval:] if held_out else pool)
    eval_inputs, eval_target = _batch(ctx, source, evaluation)
    size = min(ctx.batch_size, len(train))
    batches = [_batch(ctx, source, train[i:i + size])
               for i in range(0, max(len(train) - size, 0) + 1, size)]
    baseline, kind = constant_baseline(ctx, eval_inputs, eval_target)
    run = ProgressRun(len(train), len(evaluation), held_out, baseline, kind)
    seed_everything(derived_seed(ctx.seed, "learning-progress"))
    model = ctx.fresh_copy().train()
    optimizer, _ = make_optimizer(ctx, model)
    for step in range(PROGRESS_MAX + 1):
        if step % EVAL_EVERY == 0:
            run.eval_losses.append((step, _eval_loss(ctx, model, eval_inputs, eval_target)))
            run.outcome = _decide(run, step)
            if run.outcome:
                break
        inputs, target = batches[step % len(batches)]
        optimizer.zero_grad(set_to_none=True)
        loss = ctx.training_loss(model, inputs, target)
        run.train_losses.append(float(loss.detach()))
        loss.backward()
        optimizer.step()
    return run


def _decide(run: ProgressRun, step: int) -> str:
    """'' to go on, else why the run stops."""
    latest = run.eval_losses[-1][1]
    if not math.isfinite(latest):
        return "diverged"
    if len(run.eval_losses) >= 2 and max(v for _, v in run.eval_losses[-2:]) < run.goal:
        return "beaten"  # twice in a row: not a lucky fluctuation
    if step == 0 or step % PROGRESS_CHUNK:
        return ""
    evals = [v for _, v in run.eval_losses]
    reference = run.baseline if run.baseline is not None else evals[0]
    train = run.train_losses
    recent = sum(train[-WINDOW:]) / len(train[-WINDOW:])
    earlier = train[-2 * WINDOW:-WINDOW] or train[:WINDOW]
    train_falling = recent < (1 - FALLING) * (sum(earlier) / len(earlier))
    chunk_start = next(v for s, v in run.eval_losses if s >= step - PROGRESS_CHUNK)
    if (run.baseline is not None and latest >= reference and train_falling
            and latest - min(evals) >= BEAT * abs(reference)):
        # a held-out loss that once beat the baseline learned something before it overfit
        return "beaten" if min(evals) < run.goal else "memorising"
    if train_falling or latest < chunk_start - FALLING * abs(reference):
        return "falling" if step >= PROGRESS_MAX else ""
    return "stuck"


def _pool(ctx: CheckContext, source: DatasetSource) -> list[Any]:
    data = source.data
    budget = max(data.max_samples, 4 * ctx.train_batch_size)
    seed_everything(derived_seed(ctx.seed, "learning-pool"))
    if is_iterable(data.dataset):
        return stream_samples(data.dataset, budget)
    return [data.dataset[i] for i in range(min(len(data.dataset), budget))]


def _batch(ctx: CheckContext, source: DatasetSource, samples: list[Any]) -> tuple[Inputs, Any]:
    inputs, label = split_sample(collate(source.data, samples), source.key())
    target = label if isinstance(label, torch.Tensor) or label is None else torch.as_tensor(label)
    made = Inputs.from_user(inputs).map(lambda t: t.to(ctx.device))
    return made, (target.to(ctx.device) if isinstance(target, torch.Tensor) else target)


def _eval_loss(ctx: CheckContext, model: nn.Module, inputs: Inputs, target: Any) -> float:
    model.eval()
    try:
        with torch.no_grad():
            return float(ctx.loss_of(ctx.call(model, inputs), target))
    finally:
        model.train()


# --------------------------------------------------------------------------- baseline

ConstantMaker = Callable[[torch.Tensor, list[torch.Tensor], tuple[int, ...]],
                         torch.Tensor | None]


def constant_baseline(ctx: CheckContext, inputs: Inputs, target: Any
                      ) -> tuple[float | None, str]:
    """The declared loss of the best constant prediction on the held-out samples (fitted
    on those very targets, so a model must use its inputs to beat it, not luck into their
    class balance), for a loss torchvet knows the space of; else (None, "")."""
    probe = init_probe(ctx)
    kinds = {c.op for c in probe.losses}
    spec = ctx.spec
    if len(kinds) != 1 or not isinstance(target, torch.Tensor) or spec is None:
        return None, ""
    model_output = _output_shape(ctx, inputs)
    call = probe.losses[0]
    if model_output is None or tuple(call.input.shape)[1:] != model_output[1:]:
        return None, ""
    targets = [target]
    maker, kind = CONSTANTS.get(call.op, (None, ""))
    constant = maker(target, targets, model_output) if maker is not None else None
    if constant is None:
        return None, ""
    prediction = constant.to(call.input.dtype).expand(target.shape[0], *model_output[1:])
    with torch.no_grad():
        try:
            value = float(ctx.loss_of(prediction.to(ctx.device), target))
        except Exception:
            return None, ""
    return (value, kind) if math.isfinite(value) else (None, "")


def _output_shape(ctx: CheckContext, inputs: Inputs) -> tuple[int, ...] | None:
    out = ctx.eval_output()
    found = primary_leaf(out)
    if found is None or len(leaves(out)) != 1:
        return None
    return tuple(found[1].shape)


def _log_prior(target: torch.Tensor, train: list[torch.Tensor], shape: tuple[int, ...]
               ) -> torch.Tensor | None:
    """log of the class frequencies: the logits (or log-probabilities) of the majority
    predictor that matches the classes' shares."""
    if len(shape) != 2:
        return None
    classes = shape[1]
    if target.is_floating_point():  # soft targets (B, C)
        prior = torch.cat([t.double() for t in train]).mean(0).clamp_min(1e-6)
    else:
        labels = torch.cat([t.reshape(-1) for t in train]).long().clamp(0, classes - 1)
        prior = torch.bincount(labels, minlength=classes).double() + 0.5
    return (prior / prior.sum()).log().float()[None, :]


def _rate(target: torch.Tensor, train: list[torch.Tensor], shape: tuple[int, ...]
          ) -> torch.Tensor:
    joined = torch.cat([t.float() for t in train])
    return joined.mean(0, keepdim=True).clamp(1e-4, 1 - 1e-4)


def _logit_rate(target: torch.Tensor, train: list[torch.Tensor], shape: tuple[int, ...]
                ) -> torch.Tensor:
    p = _rate(target, train, shape)
    return (p / (1 - p)).log()


def _mean(target: torch.Tensor, train: list[torch.Tensor], shape: tuple[int, ...]
          ) -> torch.Tensor | None:
    if not target.is_floating_point():
        return None
    return torch.cat([t.float() for t in train]).mean(0, keepdim=True)


def _median(target: torch.Tensor, train: list[torch.Tensor], shape: tuple[int, ...]
            ) -> torch.Tensor | None:
    if not target.is_floating_point():
        return None
    return torch.cat([t.float() for t in train]).median(0, keepdim=True).values


CONSTANTS: dict[str, tuple[ConstantMaker, str]] = {
    "cross_entropy": (_log_prior, "the class frequencies"),
    "nll_loss": (_log_prior, "the class frequencies"),
    "binary_cross_entropy_with_logits": (_logit_rate, "the positive rate"),
    "binary_cross_entropy": (_rate, "the positive rate"),
    "mse_loss": (_mean, "the mean target"),
    "l1_loss": (_median, "the median target"),
    "smooth_l1_loss": (_median, "the median target"),
    "huber_loss": (_median, "the median target"),
}
