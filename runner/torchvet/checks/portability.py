"""portability.*: the model runs on other devices and under mixed precision.

``portability.device`` moves a copy of the model and its inputs to the ``meta`` device
(shapes without data, so it costs nothing and needs no GPU) and runs the forward pass
under a ``TorchFunctionMode`` that watches every op: a tensor that stayed on the CPU — a
plain tensor attribute instead of a buffer, ``torch.ones(n)`` without ``device=``,
``torch.from_numpy`` — is caught where it meets the model's tensors, and traced back to
the line that made it. CPU 0-dim tensors mix with any device (as on CUDA), and indexing
with CPU indices is legal, so neither is a failure. Ops that need values (``.item()``,
``nonzero``, boolean masks) cannot run on meta: the check then skips, naming the op.
With CUDA available it also runs a real forward and backward on the GPU and compares
CPU and GPU outputs with TF32 disabled.

``portability.autocast`` runs the eval forward under ``torch.autocast`` (bfloat16 on the
CPU; float16 and bfloat16 on CUDA) and names the first output leaf that goes non-finite.
"""

from __future__ import annotations

import contextlib
import copy
import re
import sys
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.overrides import TorchFunctionMode

from ..unit import optrace
from ..unit.context import CheckContext
from ..unit.inputs import Inputs
from ..unit.pytree import floating_leaves, leaves, map_tensors
from ..unit.seeding import derived_seed, seed_everything
from ..unit.training_types import LossProblem
from .base import Location, Outcome, Skip, check, failed, passed
from .state import Difference, find_unregistered, first_difference, seeded_eval
from .text import dtype_name, index_str, one_line, shape_str

META = torch.device("meta")

# Ops that legally take CPU tensors next to device tensors (CUDA accepts these too).
_MIXING_ALLOWED = {
    "to", "copy_", "type_as", "view_as", "reshape_as", "expand_as", "is_same_size",
    "ctc_loss", "new_tensor", "new_empty", "new_zeros", "new_ones", "new_full",
    "index_put", "index_put_", "__setitem__",
    "pack_padded_sequence", "_pack_padded_sequence", "pad_packed_sequence",
    "_pad_packed_sequence",
    "__repr__", "__str__", "__format__", "size", "dim", "numel", "__len__",
}
# Packed sequences keep their integer batch_sizes on the CPU; hidden states must move.
_RNN_OPS = {"lstm", "gru", "rnn_tanh", "rnn_relu"}
# Indexing a device tensor with CPU indices is legal; indexing a CPU tensor with device
# indices is not.
_INDEXING = {"__getitem__", "index", "_index"}

_DATA_DEPENDENT = re.compile(
    r"cannot be called on meta tensors|Cannot copy out of meta tensor|data-dependent|"
    r"no fake impl or Meta kernel|register_meta|_local_scalar_dense|meta tensor",
    re.IGNORECASE,
)
_DEVICE_MISMATCH = re.compile(
    r"is not on the expected device|Expected all tensors to be on the same device|"
    r"found at least two devices|same device|device mismatch|on different devices",
    re.IGNORECASE,
)

# Value probes inside torch's own Python code that may be answered "False" on meta.
_ASSUMABLE = {"__bool__", "equal", "is_nonzero"}
_TORCH_DIR = str(Path(torch.__file__).resolve().parent)


def _is_torch_file(filename: str) -> bool:
    return filename.startswith(_TORCH_DIR) or "/site-packages/torch/" in filename


_UNKNOWN = object()
# Ops whose result is meant to live on the host (``lengths.cpu()`` for packing).
_TO_HOST = {"cpu", "to", "numpy", "tolist", "item", "__bool__", "__int__", "__float__",
            "__index__"}

def _asks_for_cpu(args: Any, kwargs: Any) -> bool:
    values = [*args, *kwargs.values()]
    return any(isinstance(v, (str, torch.device)) and str(v) == "cpu" for v in values)


FACTORY_HINT = "pass device=x.device (or register the constant as a buffer)"


# --------------------------------------------------------------------------- tracing


def _flat_tensors(obj: Any, depth: int = 3) -> list[torch.Tensor]:
    if isinstance(obj, torch.Tensor):
        return [obj]
    if depth <= 0:
        return []
    if isinstance(obj, dict):
        return [t for v in obj.values() for t in _flat_tensors(v, depth - 1)]
    if isinstance(obj, (list, tuple)):
        return [t for v in obj for t in _flat_tensors(v, depth - 1)]
    return []


def _device_type(t: torch.Tensor) -> str:
    try:
        return t.device.type
    except Exception:  # tensor subclasses without a device
        return "meta"


def _describe_tensor(t: torch.Tensor) -> str:
    return f"{t.device.type}, shape {shape_str(tuple(t.shape))}, {dtype_name(t.dtype)}"


@dataclass
class Origin:
    """Where a CPU tensor met during a meta forward comes from."""

    kind: str  # "attribute" | "created" | "unknown"
    name: str  # "self.mask" or "torch.ones()"
    where: Location = None
    fix: str = ""
    describe: str = ""


@dataclass
class Mixing:
    """An op that mixed a tensor left on the CPU with the model's meta tensors."""

    op: str
    stray: torch.Tensor
    origin: Origin
    where: Location  # the line of the mixing op


class DeviceTracer(TorchFunctionMode):
    """Watches a forward on the meta device for tensors that did not move."""

    def __init__(self, locator: Any, attributes: dict[int, Origin],
                 known: dict[int, torch.Tensor] | None = None, assume: bool = True) -> None:
        super().__init__()
        self.assume = assume
        self.locator = locator
        self.attributes = attributes
        self.known = known or {}
        self.created: dict[int, tuple[torch.Tensor, Origin]] = {}
        self.mixing: list[Mixing] = []
        self.last_op: tuple[str, Location] | None = None
        self.assumed: list[str] = []

    # -- provenance --------------------------------------------------------------
    def origin(self, t: torch.Tensor) -> Origin:
        if id(t) in self.attributes:
            return self.attributes[id(t)]
        if id(t) in self.created and self.created[id(t)][0] is t:
            return self.created[id(t)][1]
        return Origin("unknown", "")

    def project_frame(self) -> Location:
        for frame in reversed(traceback.extract_stack()[:-2]):
            if frame.lineno and self.locator.is_project_file(frame.filename):
                return self.locator.relative(frame.filename), frame.lineno
        return None

    def note_created(self, name: str, inputs: list[torch.Tensor], out: Any) -> None:
        strays = [t for t in _flat_tensors(out)
                  if _device_type(t) != "meta" and t.dim() > 0 and id(t) not in self.attributes]
        if not strays:
            return
        known = [self.origin(t) for t in inputs if _device_type(t) != "meta"]
        known = [o for o in known if o.kind != "unknown"]
        if known:
            origin = known[0]
        elif not inputs:
            origin = Origin("created", f"torch.{name}()", self.project_frame(), FACTORY_HINT)
        else:
            return
        for t in strays:
            self.created[id(t)] = (t, origin)

    # -- the mode ----------------------------------------------------------------
    def illegal_strays(self, name: str, args: Any, kwargs: Any) -> list[torch.Tensor]:
        tensors = _flat_tensors((args, kwargs))
        if not tensors or name in _MIXING_ALLOWED:
            return []
        if not any(_device_type(t) == "meta" for t in tensors):
            return []
        if name in _RNN_OPS:
            return [t for t in tensors if _device_type(t) != "meta" and t.dim() > 0
                    and t.is_floating_point()]
        if name in _INDEXING and args and isinstance(args[0], torch.Tensor):
            if _device_type(args[0]) == "meta":
                return []
            return [args[0]] if args[0].dim() > 0 else []
        return [t for t in tensors if _device_type(t) != "meta" and t.dim() > 0]

    def __torch_function__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None
                           ) -> Any:
        kwargs = kwargs or {}
        name = optrace.op_name(func)
        if name in _ASSUMABLE:
            caller = sys._getframe(1)
            tensors = _flat_tensors((args, kwargs))
            if (tensors and all(_device_type(t) == "meta" for t in tensors)
                    and _is_torch_file(caller.f_code.co_filename)):
                # value probes in torch's own code (argument validation, "is this mask
                # causal?") need values meta lacks; either answer leads through the same
                # device handling, and run_on_meta retries with the other answer when the
                # first one ends in an error
                self.assumed.append(f"{Path(caller.f_code.co_filename).name}:{caller.f_lineno}")
                return self.assume
        strays = self.illegal_strays(name, args, kwargs)
        if strays and len(self.mixing) < 8:
            self.mixing.append(Mixing(name, strays[0], self.origin(strays[0]),
                                      self.project_frame()))
        try:
            out = func(*args, **kwargs)
        except Exception:
            out = self.with_known_values(func, args, kwargs)
            if out is _UNKNOWN:
                self.last_op = (name, self.project_frame())
                raise
            if name not in _TO_HOST and not _asks_for_cpu(args[1:], kwargs):
                return map_tensors(out, _to(META))  # on the host only because meta cannot
            origin = Origin("created", f".{name}() of a model input", self.project_frame(),
                            "move it back with .to(x.device) before it meets device tensors")
            for t in _flat_tensors(out):
                if _device_type(t) != "meta" and t.dim() > 0:
                    self.created[id(t)] = (t, origin)
            return out
        self.note_created(name, _flat_tensors((args, kwargs)), out)
        return out

    def with_known_values(self, func: Any, args: Any, kwargs: Any) -> Any:
        """Rerun an op that needs values (``lengths.cpu()``, ``mask.tolist()``) on a model
        input, whose values are known: only data computed on meta is unknowable."""
        if not args or not isinstance(args[0], torch.Tensor) or id(args[0]) not in self.known:
            return _UNKNOWN
        rest = _flat_tensors((args[1:], kwargs))
        if any(_device_type(t) == "meta" for t in rest):
            return _UNKNOWN
        try:
            return func(self.known[id(args[0])], *args[1:], **kwargs)
        except Exception:
            return _UNKNOWN


@contextlib.contextmanager
def _watch_from_numpy(tracer: DeviceTracer) -> Iterator[None]:
    """``torch.from_numpy`` bypasses torch function modes: wrap it to note its outputs."""
    original = torch.from_numpy

    def from_numpy(ndarray: Any) -> torch.Tensor:
        out = original(ndarray)
        if out.dim() > 0:
            origin = Origin("created", "torch.from_numpy()", tracer.project_frame(),
                            "move it with .to(x.device) (or register it as a buffer)")
            tracer.created[id(out)] = (out, origin)
        return out

    torch.from_numpy = from_numpy
    try:
        yield
    finally:
        torch.from_numpy = original


def plain_tensor_attributes(ctx: CheckContext, model: nn.Module) -> dict[int, Origin]:
    """Tensors the model holds outside its registered parameters and buffers (plain tensor
    attributes, tensors or modules in plain lists/dicts), keyed by ``id``."""
    found: dict[int, Origin] = {}
    for item in find_unregistered(model):
        where = ctx.locator.for_path(ctx.model, item.dotted)
        if item.kind == "tensor":
            fix = f"it does not move with .to(device); {item.fix()}"
        else:
            fix = f".to(device) does not see into a plain {item.kind}; {item.fix()}"
        origin = Origin("attribute", item.name, where, fix, item.describe())
        for _, tensor in item.tensors:
            found[id(tensor)] = origin
        for _, module in item.module_objects:
            for tensor in [*module.parameters(), *module.buffers()]:
                found.setdefault(id(tensor), origin)
    return found


@dataclass
class MetaRun:
    tracer: DeviceTracer
    output: Any = None
    error: BaseException | None = None
    details: str = ""


def run_on_meta(ctx: CheckContext, model: nn.Module, inputs: Inputs, train: bool,
                known: dict[int, torch.Tensor] | None = None) -> MetaRun:
    """The forward on meta; torch-internal value probes are answered "yes" (validation
    passes), and "no" on a second try when the first ends in an error."""
    first = _meta_forward(ctx, model, inputs, train, known, assume=True)
    if first.error is None or not first.tracer.assumed or first.tracer.mixing:
        return first
    second = _meta_forward(ctx, model, inputs, train, known, assume=False)
    return second if second.error is None else first


def _meta_forward(ctx: CheckContext, model: nn.Module, inputs: Inputs, train: bool,
                  known: dict[int, torch.Tensor] | None, assume: bool) -> MetaRun:
    tracer = DeviceTracer(ctx.locator, plain_tensor_attributes(ctx, model), known, assume)
    run = MetaRun(tracer)
    model.train(train)
    seed_everything(derived_seed(ctx.seed, "meta", train))
    try:
        with torch.no_grad(), _watch_from_numpy(tracer), tracer:
            run.output = ctx.call(model, inputs)
    except Exception as exc:
        run.error = exc
        run.details = traceback.format_exc()
    return run


# --------------------------------------------------------------------------- verdicts


def _at(where: Location) -> str:
    return f" at {where[0]}:{where[1]}" if where else ""


def mixing_failure(ctx: CheckContext, events: list[Mixing], mode: str, details: str = ""
                   ) -> Outcome:
    event = events[0]
    origin, stray = event.origin, event.stray
    met = (f"on the meta device ({mode} forward) {event.op}(){_at(event.where)} mixes it "
           f"({_describe_tensor(stray)}) with the model's meta tensors")
    if origin.kind == "attribute":
        message = f"{origin.describe}: {origin.fix} — {met}"
        where = origin.where or event.where
    elif origin.kind == "created":
        message = (f"{origin.name}{_at(origin.where)} creates a tensor on the CPU that does "
                   f"not follow the model's device: {origin.fix} — {met}")
        where = origin.where or event.where
    else:
        message = (f"{event.op}(){_at(event.where)} mixes a tensor left on the CPU "
                   f"({_describe_tensor(stray)}) with the model's meta tensors ({mode} "
                   "forward): create tensors with device=x.device, move numpy data with "
                   ".to(x.device), or register constants as buffers")
        where = event.where
    others = [f"{m.op}(){_at(m.where)}: {m.origin.name or 'a CPU tensor'} "
              f"({_describe_tensor(m.stray)})" for m in events[1:]]
    return failed(message, "\n".join(filter(None, [details, *others])),
                  where or ctx.where_model())


def _leftover_outputs(run: MetaRun) -> Outcome | None:
    for path, tensor in leaves(run.output):
        if _device_type(tensor) != "meta" and tensor.dim() > 0:
            origin = run.tracer.origin(tensor)
            source = (f": {origin.name}{_at(origin.where)} creates it; {origin.fix}"
                      if origin.kind != "unknown" else
                      ": create it with device=x.device or from the model's tensors")
            return failed(
                f"{path} ({_describe_tensor(tensor)}) stays on the CPU when the model and "
                f"its inputs are on the meta device{source}",
                where=origin.where,
            )
    return None


def _not_checkable(ctx: CheckContext, run: MetaRun) -> str:
    exc = run.error
    assert exc is not None
    op, where = run.tracer.last_op or ("an op", None)
    where = where or ctx.locator.for_exception(exc)
    if _DATA_DEPENDENT.search(str(exc)) or isinstance(exc, NotImplementedError):
        why = f"meta tensors hold no data and {op}(){_at(where)} needs values"
    else:
        why = f"{op}(){_at(where)} does not run on the meta device"
    return (f"{why} ({one_line(exc)[:160]}), so the device move is not checked past it; "
            "run torchvet on a CUDA machine (--device cuda) for a real device check")


def meta_verdict(ctx: CheckContext, run: MetaRun, mode: str) -> Outcome | None:
    """A failure, a :class:`Skip`, or None when the run was clean."""
    if run.tracer.mixing:
        return mixing_failure(ctx, run.tracer.mixing, mode, run.details)
    if run.error is not None:
        exc = run.error
        if _DEVICE_MISMATCH.search(str(exc)) and not _DATA_DEPENDENT.search(str(exc)):
            return failed(
                f"the {mode} forward on the meta device raised {one_line(exc)}: a tensor "
                "stayed on the CPU; create tensors with device=x.device and register "
                "constants as buffers",
                run.details, ctx.where_exception(exc),
            )
        raise Skip(_not_checkable(ctx, run))
    return _leftover_outputs(run)


# --------------------------------------------------------------------------- CUDA


GPU_TOLERANCES: dict[torch.dtype, tuple[float, float]] = {
    torch.float16: (1e-2, 1e-2), torch.bfloat16: (5e-2, 5e-2),
    torch.float32: (1e-4, 1e-3), torch.complex64: (1e-4, 1e-3),
    torch.float64: (1e-7, 1e-6), torch.complex128: (1e-7, 1e-6),
}


def gpu_tolerance(reference: torch.Tensor, declared: dict[str, float] | None = None
                  ) -> tuple[float, float]:
    """(atol, rtol) for a CPU-vs-GPU comparison: different kernels sum in a different
    order, so atol scales with the output's magnitude; a declared tolerance only widens."""
    atol, rtol = GPU_TOLERANCES.get(reference.dtype, (0.0, 0.0))
    if reference.is_floating_point() and reference.numel():
        finite = reference.detach()[torch.isfinite(reference.detach())]
        scale = float(finite.abs().max()) if finite.numel() else 1.0
        atol *= max(1.0, scale)
    if declared:
        atol = max(atol, declared.get("atol", 0.0))
        rtol = max(rtol, declared.get("rtol", 0.0))
    return atol, rtol


def cpu_gpu_difference(cpu_out: Any, gpu_out: Any, declared: dict[str, float] | None = None
                       ) -> Difference | None:
    """The first output leaf that differs between the CPU and the GPU run."""
    return first_difference(cpu_out, gpu_out, lambda t: gpu_tolerance(t, declared),
                            exact_integers=False)


@contextlib.contextmanager
def full_precision_fp32() -> Iterator[None]:
    """TF32 off for matmul and cuDNN (GPU float32 is then comparable with the CPU)."""
    matmul = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = False
    try:
        with torch.backends.cudnn.flags(enabled=None, benchmark=None, deterministic=None,
                                        allow_tf32=False):
            yield
    finally:
        torch.backends.cuda.matmul.allow_tf32 = matmul


def cuda_wanted(ctx: CheckContext) -> tuple[bool, str]:
    """(run the CUDA part, why not)."""
    declared = ctx.spec.devices if ctx.spec is not None else None
    if declared and not any(d.startswith("cuda") for d in declared):
        return False, f"devices={list(declared)} excludes CUDA"
    if ctx.device.type == "cuda":
        return True, ""
    if not torch.cuda.is_available():
        return False, "no CUDA device here"
    return True, ""


def _cuda_device(ctx: CheckContext) -> torch.device:
    return ctx.device if ctx.device.type == "cuda" else torch.device("cuda")


def _to(device: torch.device) -> Callable[[torch.Tensor], torch.Tensor]:
    return lambda t: t.to(device)


def cuda_round(ctx: CheckContext) -> tuple[Outcome | None, str]:
    """Real forward (eval) and forward+backward (train) on the GPU, and CPU/GPU parity."""
    device = _cuda_device(ctx)
    cpu = torch.device("cpu")
    cpu_model = ctx.fresh_copy().to(cpu)
    gpu_model = copy.deepcopy(cpu_model).to(device)
    cpu_inputs = ctx.inputs().map(_to(cpu))
    gpu_inputs = cpu_inputs.map(_to(device))
    declared = ctx.spec.tolerance if ctx.spec is not None else None
    notes = []
    with full_precision_fp32():
        try:
            gpu_out = seeded_eval(ctx, gpu_model, gpu_inputs)
            torch.cuda.synchronize(device)
        except Exception as exc:
            return failed(
                f"the eval forward on {device} raised {one_line(exc)}: a tensor stayed on the "
                "CPU or an op has no CUDA kernel; create tensors with device=x.device and "
                "register constants as buffers",
                traceback.format_exc(), ctx.where_exception(exc)), ""
        for path, tensor in leaves(gpu_out):
            if tensor.device.type != device.type and tensor.dim() > 0:
                return failed(f"{path} ({_describe_tensor(tensor)}) stays on the CPU when the "
                              f"model runs on {device}: create it with device=x.device"), ""
        cpu_out = seeded_eval(ctx, cpu_model, cpu_inputs)
        seed_everything(derived_seed(ctx.seed, "cuda-parity-reseed"))
        cpu_model.eval()
        with torch.no_grad():
            cpu_again = ctx.call(cpu_model, cpu_inputs)
        if first_difference(cpu_out, cpu_again, lambda t: ctx.tolerance(t.dtype)) is not None:
            notes.append("CPU/GPU parity not compared: the eval output is random "
                         "(see forward.determinism)")
        else:
            diff = cpu_gpu_difference(cpu_out, gpu_out, declared)
            if diff is not None:
                return failed(
                    f"{diff.path} differs between CPU and {device} "
                    f"({diff.what.replace('differs by ', 'by ')}, TF32 off): a device-specific "
                    "code path or a kernel that is not numerically stable; compare the layers "
                    "one by one, or widen tolerance={'atol': ..., 'rtol': ...} if expected"
                ), ""
            notes.append("CPU/GPU outputs agree (TF32 off)")
        try:
            train_step(ctx, gpu_model, device)
            torch.cuda.synchronize(device)
        except LossProblem:
            notes.append("backward not run: no usable loss (see training.loss)")
        except Exception as exc:
            details = traceback.format_exc()
            try:
                train_step(ctx, cpu_model, cpu)
            except Exception:
                notes.append("backward not compared: the training step fails on the CPU "
                             "too (see training.*)")
            else:
                return failed(
                    f"the training step on {device} raised {one_line(exc)} (it runs on the "
                    "CPU): a tensor created in forward or in the loss stayed on the CPU; "
                    "create it with device=x.device",
                    details, ctx.where_exception(exc)), ""
        else:
            notes.append("forward+backward ran")
    return None, f"on {device}: " + "; ".join(notes)


def train_step(ctx: CheckContext, model: nn.Module, device: torch.device) -> None:
    """One train-mode forward and backward of the training loss on ``device``."""
    size = ctx.train_batch_size
    inputs = ctx.inputs(size).map(_to(device))
    target = ctx.target(size)
    target = map_tensors(target, _to(device)) if target is not None else None
    model.train()
    seed_everything(derived_seed(ctx.seed, "device-train"))
    with torch.enable_grad():
        loss = ctx.training_loss(model, inputs, target)
        if not (isinstance(loss, torch.Tensor) and loss.requires_grad):
            raise LossProblem("no differentiable loss")
        loss.backward()


# --------------------------------------------------------------------------- the checks


@check("portability.device")
def device(ctx: CheckContext) -> Outcome:
    declared = ctx.spec.devices if ctx.spec is not None else None
    if declared and all(d == "cpu" for d in declared):
        raise Skip("the spec declares devices=['cpu']: the model is not meant to move")
    ctx.eval_output()
    model = ctx.fresh_copy()
    try:
        model.to(META)
    except Exception as exc:
        raise Skip(f"the model cannot move to the meta device ({one_line(exc)}), so the "
                   "device move is not checked") from exc
    real = ctx.inputs()
    inputs = real.map(_to(META))
    known = {id(m): r for (_, m), (_, r) in zip(inputs.tensors(), real.tensors(), strict=True)}
    summary = ["meta device: eval and train forwards keep every tensor on the model's device"]
    eval_run = run_on_meta(ctx, model, inputs, train=False, known=known)
    verdict = meta_verdict(ctx, eval_run, "eval")
    if verdict is not None:
        return verdict
    train_run = run_on_meta(ctx, model, inputs, train=True, known=known)
    try:
        verdict = meta_verdict(ctx, train_run, "train")
    except Skip as skip:
        summary = [f"meta device: eval forward keeps every tensor on the model's device "
                   f"(train forward not checked: {skip})"]
        verdict = None
    if verdict is not None:
        return verdict
    wanted, why_not = cuda_wanted(ctx)
    if wanted:
        outcome, note = cuda_round(ctx)
        if outcome is not None:
            return outcome
        summary.append(note)
    else:
        summary.append(f"CUDA not checked: {why_not}")
    probes = sorted(set(eval_run.tracer.assumed + train_run.tracer.assumed))
    details = (f"value probes inside torch answered without data on meta: {', '.join(probes)}"
               if probes else "")
    return passed("; ".join(summary), details)


def _autocast_runs(ctx: CheckContext) -> list[tuple[str, torch.dtype]]:
    runs: list[tuple[str, torch.dtype]] = []
    if ctx.device.type != "cuda":
        runs.append(("cpu", torch.bfloat16))
    wanted, _ = cuda_wanted(ctx)
    if wanted:
        if torch.cuda.is_bf16_supported():
            runs.append(("cuda", torch.bfloat16))
        runs.append(("cuda", torch.float16))
    return runs


_AUTOCAST_HINTS = {
    torch.bfloat16: "a float32-only constant such as torch.finfo(torch.float32).min as a mask "
                    "fill rounds to -inf in bfloat16 (use torch.finfo(x.dtype).min), or a value "
                    "overflows",
    torch.float16: "float16 overflows above 65504 (scale down, or use "
                   "torch.finfo(x.dtype).min for mask fills)",
}


@check("portability.autocast")
def autocast(ctx: CheckContext) -> Outcome:
    if not any(p.is_floating_point() for p in ctx.model.parameters()):
        raise Skip("the model has no floating-point parameters: autocast changes nothing")
    dtype = ctx.parameters_dtype()
    if dtype != torch.float32:
        raise Skip(f"the parameters are {dtype_name(dtype)}: autocast only "
                   "lowers float32 ops")
    reference = ctx.eval_output()
    finite = {p for p, t in floating_leaves(reference) if bool(torch.isfinite(t).all())}
    if not finite:
        raise Skip("the float32 output is already non-finite (see forward.finite)")
    done = []
    for device_type, low in _autocast_runs(ctx):
        name = dtype_name(low)
        # a copy: lazily built caches (rotary tables...) must not keep a low-precision
        # dtype in the pristine model the other checks use
        if device_type == ctx.device.type:
            model, inputs = ctx.fresh_copy(), ctx.inputs()
        else:
            target = _cuda_device(ctx)
            model, inputs = ctx.fresh_copy().to(target), ctx.inputs().map(_to(target))
        model.eval()

        def run(model: nn.Module = model, inputs: Inputs = inputs, device_type: str = device_type,
                low: torch.dtype = low) -> Any:
            seed_everything(derived_seed(ctx.seed, "eval", ctx.batch_size, 0))
            with torch.no_grad(), torch.autocast(device_type, dtype=low):
                return ctx.call(model, inputs)

        try:
            out = run()
        except Exception as exc:
            if "overflow" in str(exc):
                fix = (f"a constant outside the {name} range (torch.finfo(torch.float32).min "
                       "as a mask fill?) meets a low-precision tensor; use "
                       "torch.finfo(x.dtype).min")
            else:
                fix = ("an op outside autocast's casting lists got mixed dtypes; cast "
                       "explicitly (y.to(x.dtype))")
            return failed(
                f"the forward under {name} autocast ({device_type}) raised {one_line(exc)}: "
                f"{fix}, or run that part in float32 with torch.autocast('{device_type}', "
                "enabled=False)",
                traceback.format_exc(), ctx.where_exception(exc))
        for path, tensor in floating_leaves(out):
            bad = ~torch.isfinite(tensor)
            if path not in finite or not bool(bad.any()):
                continue
            nan = int(torch.isnan(tensor).sum())
            inf = int(bad.sum()) - nan
            first = index_str(bad.nonzero()[0].tolist())
            found = optrace.trace(run, optrace.nonfinite_from_finite, ctx.locator)
            culprit = f"; first at {found[0]}" if found else ""
            return failed(
                f"{path}{first if tensor.dim() else ''} is non-finite under {name} autocast "
                f"({device_type}) but finite in float32 ({nan} NaN, {inf} Inf of "
                f"{tensor.numel()}){culprit}: {_AUTOCAST_HINTS.get(low, '')}; keep that part "
                f"in float32 with torch.autocast('{device_type}', enabled=False)",
                where=found[1] if found else None,
            )
        done.append(f"{name} ({device_type})")
    return passed(f"outputs stay finite under {', '.join(done)} autocast")
