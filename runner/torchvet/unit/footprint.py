"""What a unit's checks need in memory, estimated before they run.

The estimate adds up what each check really allocates beyond the built model: the
parameter, buffer and gradient bytes, the optimizer's state (Adam: twice the trainable
parameters; the stateless step: none), the extra model instances a check makes (a copy
to train, a fresh factory instance for ``state.roundtrip``), and activations from one
probe forward: its peak resident growth (what an eval forward costs) and the bytes
autograd saves for backward in it (what a training step keeps alive), counted through
``saved_tensors_hooks`` that drop each tensor at once, so the probe costs no more than
an eval forward. Estimates err high: a check skipped for memory is a nuisance, an OOM
kill loses the unit.
"""

from __future__ import annotations

import traceback
from dataclasses import dataclass, replace
from typing import Any, Protocol

import torch
from torch import nn

from .copies import named_state, nbytes
from .inputs import Inputs
from .rss import Meter
from .seeding import derived_seed, seed_everything
from .spec import ModelSpec
from .text import one_line

MiB = 1 << 20
SLACK = 32 * MiB  # Python objects, comparisons, small temporaries of any check
# Training in train mode saves dropout masks and batch statistics beyond what the eval
# probe saw.
TRAIN_MODE_FACTOR = 1.25
LOSS_AT_INIT_BATCH = 16  # the batch an eval reading of training.loss_at_init takes
PROBE_BATCH = 64  # the batch the learning probe reads (checks/shared/probe.py)
PROBE_MAX_PARAMS = 2_000_000  # above it the probe and the one-batch runs stay small
# Above this many trainable parameters the short training run uses the stateless step
# (Adam's first step at every step) instead of Adam, whose state would double the
# memory of the gradients: a fixed size, so the verdict does not depend on the machine.
STATELESS_PARAMS = 50_000_000
# Below this many bytes of weights the training run's saved values stay in memory (a
# clone is cheaper than a file); above it they go to disk where there is one.
SPILL_BYTES = 64 * MiB


class Unit(Protocol):
    """What the estimate reads of a built unit (the check context is one)."""

    seed: int
    spec: ModelSpec | None

    @property
    def model(self) -> nn.Module: ...

    @property
    def batch_size(self) -> int: ...

    @property
    def train_batch_size(self) -> int: ...

    def inputs(self, batch_size: int | None = None, variant: int = 0) -> Inputs: ...

    def call(self, model: nn.Module, inputs: Inputs) -> Any: ...


@dataclass(frozen=True)
class Sizes:
    """Bytes of a built unit: its weights, what training adds, what a forward costs."""

    weights: int = 0  # distinct parameter and buffer storages
    trainable: int = 0  # trainable parameters (their gradients take as much)
    trainable_params: int = 0  # how many trainable parameters (elements)
    largest: int = 0  # the largest single tensor (read back from spilled saved values)
    eval_activations: int = 0  # peak growth of one eval forward at the standard batch
    saved_activations: int = 0  # what autograd saves for backward in that forward
    probe_error: str = ""

    @property
    def stateless(self) -> bool:
        return self.trainable_params > STATELESS_PARAMS


def model_sizes(ctx: Unit) -> Sizes:
    """The weights' bytes (no forward)."""
    model = ctx.model
    state = [t for _, t in named_state(model)]
    trainable = [p for p in model.parameters() if p.requires_grad]
    return Sizes(
        weights=nbytes(state),
        trainable=nbytes(trainable),
        trainable_params=sum(p.numel() for p in trainable),
        largest=max((t.numel() * t.element_size() for t in state), default=0),
    )


def probe(ctx: Unit, meter: Meter) -> Sizes:
    """:func:`model_sizes` plus one eval forward, with grad on, that measures its peak
    growth and the bytes autograd would keep for backward (dropped as they come)."""
    sizes = model_sizes(ctx)
    model = ctx.model
    weights = {t.untyped_storage().data_ptr() for _, t in named_state(model)}
    saved = 0

    def pack(t: torch.Tensor) -> None:
        nonlocal saved
        if t.untyped_storage().data_ptr() not in weights:
            saved += t.numel() * t.element_size()

    def unpack(_: None) -> torch.Tensor:
        raise RuntimeError("the memory probe keeps nothing for backward")

    was_training = model.training
    error = ""
    meter.begin()
    before = meter.now()
    try:
        inputs = ctx.inputs()
        seed_everything(derived_seed(ctx.seed, "eval", ctx.batch_size, 0))
        with torch.enable_grad(), torch.autograd.graph.saved_tensors_hooks(pack, unpack):
            output = ctx.call(model.eval(), inputs)
        del output
    except Exception as exc:
        error = f"{one_line(exc)}\n{traceback.format_exc(limit=3)}"
    finally:
        model.train(was_training)
    grown = max(0, meter.end() - before)
    return replace(sizes, eval_activations=grown, saved_activations=saved, probe_error=error)


# --------------------------------------------------------------------------- per check


@dataclass(frozen=True)
class TrainingWay:
    """How the short training run is laid out in memory."""

    lend: bool  # train the model itself in place (restored after) instead of a copy
    spill: bool  # the copy of its values goes to disk instead of memory
    stateless: bool  # the stateless step instead of Adam

    def describe(self) -> str:
        where = "the model itself, in place," if self.lend else "a copy"
        kept = "on disk" if self.spill else "in memory"
        return f"trained {where} with its starting values kept {kept}"


def _scaled(size: int, batch: int, ctx: Unit) -> int:
    return int(size * batch / max(1, ctx.batch_size))


def _proportional(s: Sizes) -> int:
    """The part of the eval forward's growth that scales with the batch: at most what
    the activations themselves weigh (the rest is one-time set-up of kernels)."""
    return min(s.eval_activations, s.saved_activations)


def _eval(s: Sizes, batch: int, ctx: Unit) -> int:
    """An eval forward at ``batch``: the one-time part plus the scaled activations."""
    share = _proportional(s)
    return s.eval_activations - share + _scaled(share, batch, ctx)


def held_growth(s: Sizes, ctx: Unit) -> int:
    """What a unit accumulates between checks (memoised outputs; the learning probe's
    record of each weight layer's input; the one-batch runs, a copy with its optimizer
    each, that a small model keeps for their next reader), which the grant must cover
    besides the largest check."""
    batch = max(LOSS_AT_INIT_BATCH, ctx.train_batch_size)
    small = s.trainable_params <= PROBE_MAX_PARAMS
    probe = max(PROBE_BATCH, ctx.train_batch_size) if small else ctx.train_batch_size
    runs = 3 * (s.weights + 3 * s.trainable) if small else 0
    return (_scaled(_proportional(s), batch, ctx) + _scaled(s.saved_activations, probe, ctx)
            + runs + 2 * SLACK)


def training_need(s: Sizes, ctx: Unit, way: TrainingWay) -> int:
    """Bytes the shared training run needs beyond the built model, laid out ``way``."""
    spec = ctx.spec
    custom = spec is not None and spec.optimizer is not None
    optimizer = 0 if way.stateless and not custom else 2 * s.trainable
    batch = ctx.train_batch_size
    activations = int(_scaled(s.saved_activations, batch, ctx) * TRAIN_MODE_FACTOR)
    activations += _eval(s, batch, ctx)
    copy = 0 if way.lend else s.weights
    # what each step is compared against (on disk: one tensor read back at a time), and
    # a lent model's starting values besides
    saved = s.largest if way.spill else s.weights * (2 if way.lend else 1)
    return copy + saved + s.trainable + optimizer + activations + SLACK


def overfit_runs(s: Sizes, ctx: Unit) -> bool:
    spec = ctx.spec
    return (spec is not None and spec.has_real_loss
            and spec.within_overfit_budget(s.trainable_params))


def check_need(check_id: str, s: Sizes, ctx: Unit, training: int) -> int:
    """Bytes ``check_id`` needs beyond the built model; ``training``: the shared training
    run's need (0 once it has run: its result is memoised)."""
    w, share = s.weights, _proportional(s)
    area = check_id.split(".", 1)[0]
    batch, train_batch = ctx.batch_size, ctx.train_batch_size

    def kept(b: int) -> int:  # outputs held while another forward runs
        return 2 * _scaled(share, b, ctx)

    def capture(b: int) -> int:  # the loss capture: a copy, in train mode, autograd on
        return w + int(_scaled(s.saved_activations, b, ctx) * TRAIN_MODE_FACTOR)

    if check_id in ("forward.runs", "forward.finite", "forward.dtype", "forward.shape",
                    "forward.determinism"):
        need = _eval(s, batch, ctx) + kept(batch)
    elif check_id == "forward.batch_sizes":
        need = _eval(s, 3, ctx) + kept(3)
    elif check_id == "forward.batch_independence":
        b = max(2, batch)
        need = _scaled(s.saved_activations, b, ctx) + _eval(s, b, ctx) + kept(b)
    elif check_id == "training.loss_at_init" or area == "learning":
        # the learning probe: one instrumented step on a copy, in train mode, at up to
        # PROBE_BATCH samples, each weight layer's input kept; then (learning_rate,
        # progress) one-batch runs: a copy with its gradients and the optimizer's state
        b = train_batch if s.trainable_params > PROBE_MAX_PARAMS else max(PROBE_BATCH,
                                                                          train_batch)
        need = capture(b) + s.trainable + _scaled(s.saved_activations, b, ctx)
        spec = ctx.spec
        declared = spec is not None and spec.optimizer is not None
        if area == "learning" and (declared or overfit_runs(s, ctx)):
            runs = 1 if s.trainable_params > PROBE_MAX_PARAMS else 3  # small ones are kept
            need += runs * (w + 3 * s.trainable) + capture(train_batch) - w
    elif check_id == "training.overfit":
        # its own copy and Adam, on top of the shared run it reads first
        need = training
        if overfit_runs(s, ctx):
            own = training_need(s, ctx, TrainingWay(lend=False, spill=True, stateless=False))
            need = max(need, own)
    elif area == "training":
        need = training
    elif check_id == "state.roundtrip":
        # a fresh factory instance, and the loaded file's pages while they are copied
        need = 2 * w + _eval(s, batch, ctx) + kept(batch)
    elif check_id == "portability.device":
        need = _eval(s, batch, ctx)  # a meta twin holds no data; CUDA copies use the GPU
    elif area == "portability":
        # a copy of the modules (a large model's shares its parameters: memory_plan), and
        # autocast's cache of the weights cast to 16 bits
        copy = w if w < SPILL_BYTES else max(0, w - s.trainable)
        need = copy + w // 2 + _eval(s, batch, ctx) + kept(batch)
    elif area == "export":
        need = w + 2 * _eval(s, batch, ctx) + 256 * MiB
    elif check_id == "data.model_fit":
        need = _eval(s, train_batch, ctx) + _scaled(s.saved_activations, train_batch, ctx)
    elif area == "data":
        need = 64 * MiB
    else:
        need = w + 2 * _eval(s, batch, ctx)
    return need + SLACK
