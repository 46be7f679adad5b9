"""The meta-device run behind ``portability.device``: a forward pass with the model and
its inputs on the ``meta`` device (shapes without data, so it costs nothing and needs no
GPU), under a ``TorchFunctionMode`` that watches every op.

A tensor that stayed on the CPU — a plain tensor attribute instead of a buffer,
``torch.ones(n)`` without ``device=``, ``torch.from_numpy`` — is caught where it meets the
model's tensors and traced back to the line that made it. CPU 0-dim tensors mix with any
device (as on CUDA), and indexing with CPU indices is legal, so neither is a failure. Ops
that need values (``.item()``, ``nonzero``, boolean masks) cannot run on meta: the check
then skips, naming the op.
"""

from __future__ import annotations

import contextlib
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

from ...unit import optrace
from ...unit.context import CheckContext
from ...unit.inputs import Inputs
from ...unit.pytree import leaves, map_tensors
from ...unit.seeding import derived_seed, seed_everything
from ...unit.text import dtype_name, one_line, shape_str
from ...verdict import Location, Outcome, Skip, failed
from .unregistered import find_unregistered

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


def to_device(device: torch.device) -> Callable[[torch.Tensor], torch.Tensor]:
    return lambda t: t.to(device)


def describe_tensor(t: torch.Tensor) -> str:
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
                return map_tensors(out, to_device(META))  # on the host only because meta cannot
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
           f"({describe_tensor(stray)}) with the model's meta tensors")
    if origin.kind == "attribute":
        message = f"{origin.describe}: {origin.fix} — {met}"
        where = origin.where or event.where
    elif origin.kind == "created":
        message = (f"{origin.name}{_at(origin.where)} creates a tensor on the CPU that does "
                   f"not follow the model's device: {origin.fix} — {met}")
        where = origin.where or event.where
    else:
        message = (f"{event.op}(){_at(event.where)} mixes a tensor left on the CPU "
                   f"({describe_tensor(stray)}) with the model's meta tensors ({mode} "
                   "forward): create tensors with device=x.device, move numpy data with "
                   ".to(x.device), or register constants as buffers")
        where = event.where
    others = [f"{m.op}(){_at(m.where)}: {m.origin.name or 'a CPU tensor'} "
              f"({describe_tensor(m.stray)})" for m in events[1:]]
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
                f"{path} ({describe_tensor(tensor)}) stays on the CPU when the model and "
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
