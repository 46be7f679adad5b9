"""One instrumented training step at init, on a real batch: what the learning
diagnostics read.

A fresh copy of the model, in train mode (what the first optimizer step sees), runs the
user's loss or step once on the largest batch the inputs can supply cheaply, then one
backward. Hooks and a ``TorchFunctionMode`` record, in execution order: every
activation (module or functional) with its dead / saturated share, every layer that
holds parameters with the scale of what goes in and out, every torch loss call with
what fed it, the gradient and weight norm of every parameter, and the state the step
changed by itself (a queue, a centre, an EMA teacher). Memoised per unit, so all the
diagnostics pay for one step.
"""

from __future__ import annotations

import math
import sys
import weakref
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn
from torch.overrides import TorchFunctionMode

from ...unit.context import CheckContext
from ...unit.data_batches import DatasetSource
from ...unit.footprint import PROBE_BATCH, PROBE_MAX_PARAMS
from ...unit.inputs import FixedSource
from ...unit.memory_plan import LEARNING_PROBE
from ...unit.optrace import op_name
from ...unit.pytree import leaves
from ...unit.seeding import derived_seed, seed_everything
from ...unit.text import one_line
from ...verdict import DependencyFailed, Location, Skip

# PROBE_BATCH: samples a statistic is judged on, where the inputs can supply them;
# PROBE_MAX_PARAMS: above it the probe uses the training batch size (the memory estimate
# sizes the probe by the same two numbers)
OWN_STATE_LIMIT = 10_000_000  # elements of buffers and frozen parameters worth a copy

RELU_FAMILY = {"relu", "relu_", "relu6"}
SQUASHING = {"sigmoid": 4.5, "sigmoid_": 4.5, "tanh": 2.25, "tanh_": 2.25}
ACTIVATIONS = RELU_FAMILY | set(SQUASHING) | {
    "softmax", "log_softmax", "leaky_relu", "elu", "gelu", "silu", "softplus", "logsigmoid",
    "hardtanh", "hardsigmoid", "mish", "selu", "celu"}
# ops that pass a tensor's provenance on (a view or a cast of the same values)
SHAPE_OPS = {"view", "reshape", "squeeze", "unsqueeze", "flatten", "__getitem__", "select",
             "contiguous", "float", "double", "to", "clone", "view_as", "reshape_as",
             "transpose", "permute", "t", "narrow", "type"}
LOSSES = {"cross_entropy", "nll_loss", "binary_cross_entropy",
          "binary_cross_entropy_with_logits", "mse_loss", "l1_loss", "smooth_l1_loss",
          "huber_loss", "kl_div", "poisson_nll_loss", "soft_margin_loss", "gaussian_nll_loss",
          "multilabel_soft_margin_loss", "multi_margin_loss", "margin_ranking_loss"}
POOLS = {"max_pool1d", "max_pool2d", "max_pool3d", "avg_pool1d", "avg_pool2d", "avg_pool3d",
         "adaptive_max_pool1d", "adaptive_max_pool2d", "adaptive_max_pool3d",
         "adaptive_avg_pool1d", "adaptive_avg_pool2d", "adaptive_avg_pool3d"}
DROPOUTS = {"dropout", "dropout1d", "dropout2d", "dropout3d", "alpha_dropout",
            "feature_alpha_dropout"}
WEIGHT_LAYERS = (nn.Linear, nn.Bilinear, nn.modules.conv._ConvNd, nn.RNNBase)
NORM_LAYERS = (nn.modules.batchnorm._NormBase, nn.LayerNorm, nn.GroupNorm,
               nn.LocalResponseNorm)
NORM_KINDS = {"BatchNorm1d", "BatchNorm2d", "BatchNorm3d", "LayerNorm", "GroupNorm",
              "InstanceNorm1d", "InstanceNorm2d", "InstanceNorm3d", "SyncBatchNorm",
              "RMSNorm"}


@dataclass
class ActivationCall:
    """One activation the forward ran."""

    op: str
    module: str  # dotted path of the innermost module running it ("" = the model itself)
    where: Location  # the project line that applied it (functional calls)
    shape: tuple[int, ...]
    order: int
    units: int = 0
    dead: float | None = None  # share of units never > 0 over the batch (ReLU family)
    saturated: float | None = None  # share of inputs in the flat tails (sigmoid / tanh)
    dim: int | None = None  # softmax / log_softmax dim
    is_output: bool = False  # its result is (a view of) the model's output
    in_model: bool = True  # called inside the model's forward (not in the loss code)

    @property
    def label(self) -> str:
        return f"{self.module} ({self.op})" if self.module else f"{self.op}()"


@dataclass
class LayerCall:
    """A module holding parameters, at its first call."""

    name: str
    kind: str
    order: int
    in_rms: float
    out_rms: float
    out_width: int
    in_shape: tuple[int, ...] = ()
    out_shape: tuple[int, ...] = ()
    weight: bool = False  # a Linear/Conv/RNN (not a norm, an embedding or a container)
    features: torch.Tensor | None = None  # (features, samples) of its input: weight layers


@dataclass
class OpCall:
    """A pooling or dropout op, where it ran and what it did to the shape."""

    op: str
    module: str
    where: Location
    in_shape: tuple[int, ...]
    out_shape: tuple[int, ...]
    p: float = 0.0  # dropout probability


@dataclass
class LossCall:
    """A torch loss function the step called, and what fed it."""

    op: str
    input: torch.Tensor
    target: torch.Tensor | None
    value: float | None
    source: ActivationCall | None  # the activation whose result it was fed (through views)
    kwargs: dict[str, Any] = field(default_factory=dict)


@dataclass
class InitProbe:
    batch: int
    loss: float
    activations: list[ActivationCall] = field(default_factory=list)
    layers: list[LayerCall] = field(default_factory=list)
    losses: list[LossCall] = field(default_factory=list)
    grad_norms: dict[str, float] = field(default_factory=dict)  # parameter -> ||grad||
    weight_norms: dict[str, float] = field(default_factory=dict)
    sizes: dict[str, int] = field(default_factory=dict)  # parameter -> numel
    owner: dict[str, str] = field(default_factory=dict)  # parameter -> module
    ops: list[OpCall] = field(default_factory=list)  # pooling and dropout
    toggled: list[str] = field(default_factory=list)  # modules whose requires_grad flips
    self_updated: list[str] = field(default_factory=list)  # state the step moved itself
    distinct_samples: int = 0


def adversarial(ctx: CheckContext, probe: InitProbe) -> bool:
    """The step sums opposing objectives: it toggles requires_grad inside (a GAN), or
    training="adversarial" is declared; its summed loss need not fall."""
    spec = ctx.spec
    return bool(probe.toggled) or getattr(spec, "training", None) == "adversarial"


def probe_batch(ctx: CheckContext) -> int:
    """The batch statistics are judged on: up to PROBE_BATCH real or generated samples;
    the training batch for a fixed example (re-batching only repeats it) or a large
    model."""
    spec = ctx.spec
    assert spec is not None
    base = ctx.train_batch_size
    params = sum(p.numel() for p in spec.model.parameters())
    if params > PROBE_MAX_PARAMS or isinstance(spec.inputs, FixedSource):
        return base
    if isinstance(spec.inputs, DatasetSource):
        length = _length(spec.inputs)
        return max(base, min(PROBE_BATCH, length)) if length else base
    return max(base, PROBE_BATCH)


def _length(source: DatasetSource) -> int:
    try:
        return len(source.data.dataset)
    except TypeError:
        return 0


def init_probe(ctx: CheckContext) -> InitProbe:
    """The instrumented first step (memoised); a step that cannot run makes every
    diagnostic skip, naming training.loss."""
    return ctx.memo(LEARNING_PROBE, lambda: _run_probe(ctx))


def _run_probe(ctx: CheckContext) -> InitProbe:
    batch = probe_batch(ctx)
    inputs, target = ctx.inputs(batch), ctx.target(batch)
    seed_everything(derived_seed(ctx.seed, "learning-probe"))
    model = ctx.fresh_copy().train()
    recorder = Recorder(ctx, model)
    before = _own_state(model)
    try:
        with recorder.hooks(), recorder:
            loss = ctx.training_loss(model, inputs, target)
        if not isinstance(loss, torch.Tensor) or loss.dim() != 0 or not loss.requires_grad:
            raise DependencyFailed("not run: the loss is not a scalar that requires grad "
                                   "(see training.loss)")
        loss.backward()
    except Skip:
        raise
    except Exception as exc:
        raise DependencyFailed(f"not run: the training step raised {one_line(exc)} at batch "
                               f"size {batch} (see training.loss)") from exc
    probe = recorder.result(batch, float(loss.detach()))
    probe.self_updated = [n for n, t in _own_state(model).items()
                          if n in before and not torch.equal(t, before[n])]
    for name, p in model.named_parameters():
        probe.sizes[name] = p.numel()
        probe.weight_norms[name] = float(p.detach().float().norm())
        if p.grad is not None:
            probe.grad_norms[name] = float(p.grad.detach().float().norm())
    probe.distinct_samples = _distinct(inputs.tensors(), batch)
    return probe


def _own_state(model: nn.Module) -> dict[str, torch.Tensor]:
    """Buffers and frozen parameters the model's own code may update in a step (a queue,
    a centre, an EMA teacher); normalisation statistics aside."""
    norm_buffers = {f"{m}.{b}" if m else b for m, mod in model.named_modules()
                    if isinstance(mod, NORM_LAYERS) for b, _ in mod.named_buffers(recurse=False)}
    state = {n: b for n, b in model.named_buffers()
             if n not in norm_buffers and b.is_floating_point()}
    state.update({n: p for n, p in model.named_parameters() if not p.requires_grad})
    if sum(t.numel() for t in state.values()) > OWN_STATE_LIMIT:
        return {}  # a large frozen backbone: not worth a copy to learn who moves it
    return {n: t.detach().clone() for n, t in state.items()}


def _distinct(tensors: list[tuple[str, torch.Tensor]], batch: int) -> int:
    for _, t in tensors:
        if t.dim() >= 1 and t.shape[0] == batch:
            return int(torch.unique(t.detach().reshape(batch, -1).float(), dim=0).shape[0])
    return batch


class Recorder(TorchFunctionMode):
    """Records activations, layers, loss calls and requires_grad flips of one step."""

    def __init__(self, ctx: CheckContext, model: nn.Module) -> None:
        super().__init__()
        self.ctx = ctx
        self.model = model
        self.stack: list[str] = []
        self.order = 0
        self.activations: list[ActivationCall] = []
        self.layers: dict[str, LayerCall] = {}
        self.losses: list[LossCall] = []
        self.ops: list[OpCall] = []
        self.flags: dict[str, set[tuple[bool, ...]]] = {}
        self.quiet = False  # the recorder's own tensor work in hooks is not the model's
        # tensor id -> (weakref, activation): whose result a tensor is, through views
        self.produced: dict[int, tuple[weakref.ref[torch.Tensor], ActivationCall]] = {}

    # -- module hooks --------------------------------------------------------------
    @contextmanager
    def hooks(self) -> Iterator[None]:
        with ExitStack() as stack:
            for name, module in self.model.named_modules():
                if isinstance(module, torch.jit.ScriptModule):
                    continue  # TorchScript modules take no Python hooks; their ops still show
                pre = module.register_forward_pre_hook(self._enter(name, module))
                post = module.register_forward_hook(self._leave(name, module))
                stack.callback(pre.remove)
                stack.callback(post.remove)
            yield

    def _enter(self, name: str, module: nn.Module) -> Any:
        own = list(module.parameters(recurse=False))

        def hook(_module: nn.Module, args: Any) -> None:
            self.stack.append(name)
            if own:
                self.flags.setdefault(name, set()).add(tuple(p.requires_grad for p in own))
        return hook

    def _leave(self, name: str, module: nn.Module) -> Any:
        holds = any(True for _ in module.parameters(recurse=False))

        def hook(_module: nn.Module, args: Any, out: Any) -> None:
            if self.stack and self.stack[-1] == name:
                self.stack.pop()
            if module is self.model:
                for _, t in leaves(out):
                    source = self.source_of(t)
                    if source is not None:
                        source.is_output = True
            if holds and name not in self.layers:
                self.quiet = True
                try:
                    self.layers[name] = _layer_call(name, module, args, out, self._tick())
                finally:
                    self.quiet = False
        return hook

    def _tick(self) -> int:
        self.order += 1
        return self.order

    # -- ops -------------------------------------------------------------------------
    def __torch_function__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        name = op_name(func)
        first = args[0] if args and isinstance(args[0], torch.Tensor) else None
        if first is None or self.quiet:
            return out
        if name in ACTIVATIONS and isinstance(out, torch.Tensor) and first.is_floating_point():
            call = self._activation(name, first, out, args, kwargs)
            self.produced[id(out)] = (weakref.ref(out), call)
        elif (name in POOLS or name in DROPOUTS) and isinstance(out, torch.Tensor):
            p = kwargs.get("p", args[1] if name in DROPOUTS and len(args) > 1 else 0.0)
            training = kwargs.get("training", args[2] if len(args) > 2 else True)
            if name in POOLS or training:
                self.ops.append(OpCall(name, self.stack[-1] if self.stack else "",
                                       self._project_line(), tuple(first.shape),
                                       tuple(out.shape), float(p)))
        elif name in SHAPE_OPS and isinstance(out, torch.Tensor):
            source = self.source_of(first)
            if source is not None:
                self.produced[id(out)] = (weakref.ref(out), source)
        elif name in LOSSES:
            target = args[1] if len(args) > 1 else kwargs.get("target")
            scalar = isinstance(out, torch.Tensor) and out.dim() == 0
            value = float(out.detach()) if scalar else None
            self.losses.append(LossCall(
                name, first.detach(), target.detach() if isinstance(target, torch.Tensor)
                else None, value, self.source_of(first),
                {k: v for k, v in kwargs.items() if isinstance(v, (str, int, float, bool))}))
        return out

    def source_of(self, tensor: torch.Tensor) -> ActivationCall | None:
        found = self.produced.get(id(tensor))
        if found is None or found[0]() is not tensor:
            return None
        return found[1]

    def _activation(self, name: str, x: torch.Tensor, out: torch.Tensor, args: Any,
                    kwargs: dict[str, Any]) -> ActivationCall:
        module = self.stack[-1] if self.stack else ""
        as_module = bool(module) and _is_activation_module(self.model.get_submodule(module))
        call = ActivationCall(name.rstrip("_"), module, None if as_module else self._project_line(),
                              tuple(x.shape), self._tick(), in_model=bool(self.stack))
        values = out.detach()
        if name in RELU_FAMILY and values.dim() >= 2:
            call.units, call.dead = _dead_share(values)
        if name in SQUASHING and x.numel():
            call.saturated = float((x.detach().abs() > SQUASHING[name]).float().mean())
            call.units = _units(values)
        if name in ("softmax", "log_softmax"):
            dim = kwargs.get("dim", args[1] if len(args) > 1 else None)
            call.dim = int(dim) if isinstance(dim, int) else None
        self.activations.append(call)
        return call

    def _project_line(self) -> Location:
        frame = sys._getframe(1)
        while frame is not None:
            filename = frame.f_code.co_filename
            if self.ctx.locator.is_project_file(filename):
                return self.ctx.locator.relative(filename), frame.f_lineno
            frame = frame.f_back  # type: ignore[assignment]
        return None

    def result(self, batch: int, loss: float) -> InitProbe:
        owner = {f"{m}.{p}" if m else p: m for m, mod in self.model.named_modules()
                 for p, _ in mod.named_parameters(recurse=False)}
        return InitProbe(
            batch=batch, loss=loss, activations=self.activations,
            layers=sorted(self.layers.values(), key=lambda c: c.order), losses=self.losses,
            ops=self.ops, owner=owner,
            toggled=sorted(n for n, f in self.flags.items() if len(f) > 1))


def _is_activation_module(module: nn.Module) -> bool:
    return type(module).__module__.startswith("torch.nn.modules.activation")


def _units(values: torch.Tensor) -> int:
    if values.dim() < 2:
        return 1
    return int(values.shape[1]) if values.dim() != 3 else int(values.shape[-1])


def _dead_share(values: torch.Tensor) -> tuple[int, float]:
    """(units, share of units never > 0) along the feature dim; for 3-d outputs, where
    the feature dim is ambiguous (B, C, L) or (B, T, H), the less dead reading."""
    readings = []
    dims = [1] if values.dim() != 3 else [1, 2]
    for dim in dims:
        alive = (values > 0).transpose(0, dim).reshape(values.shape[dim], -1).any(1)
        readings.append((int(values.shape[dim]), 1.0 - float(alive.float().mean())))
    return min(readings, key=lambda r: r[1])


def _rms(value: Any) -> float:
    found = [t for _, t in leaves(value, "") if t.is_floating_point() and t.numel()]
    if not found:
        return math.nan
    t = found[0].detach().float()
    return float(t.pow(2).mean().sqrt())


def _first_float(value: Any) -> torch.Tensor | None:
    found = [t for _, t in leaves(value, "") if t.is_floating_point() and t.numel()]
    return found[0].detach() if found else None


def _layer_call(name: str, module: nn.Module, args: Any, out: Any, order: int) -> LayerCall:
    x, y = _first_float(args), _first_float(out)
    call = LayerCall(name, type(module).__name__, order, _rms(args), _rms(out),
                     _width(module, y), tuple(x.shape) if x is not None else (),
                     tuple(y.shape) if y is not None else ())
    call.weight = isinstance(module, WEIGHT_LAYERS)
    if call.weight and x is not None and x.dim() >= 2:
        feature_dim = 1 if isinstance(module, nn.modules.conv._ConvNd) else x.dim() - 1
        call.features = x.float().transpose(0, feature_dim).reshape(x.shape[feature_dim], -1)
    return call


def _width(module: nn.Module, y: torch.Tensor | None) -> int:
    for attr in ("out_features", "out_channels", "hidden_size", "num_features",
                 "embedding_dim"):
        value = getattr(module, attr, None)
        if isinstance(value, int):
            return value
    return int(y.shape[-1]) if y is not None and y.dim() else 0
