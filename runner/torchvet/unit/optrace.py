"""Find the line of user code whose torch op caused a verdict.

After a check has established a bug (a NaN output, float64 creep, randomness in eval,
batch mixing), the forward pass is replayed under a ``TorchFunctionMode`` that tests
every op against a predicate and records the innermost project frame of the first
match. Only used to explain failures, so healthy models never pay for it.
"""

from __future__ import annotations

import traceback
from collections.abc import Callable
from typing import Any

import torch
from torch.overrides import TorchFunctionMode

from .locate import Locator
from .pytree import leaves

Predicate = Callable[[str, tuple[Any, ...], dict[str, Any], Any], str | None]


def op_name(func: Any) -> str:
    return str(getattr(func, "__name__", None) or func)


def base_name(name: str) -> str:
    """``add`` for ``add_``: the op an in-place variant performs."""
    return name.removesuffix("_") if name.endswith("_") and not name.startswith("_") else name


class OpTracer(TorchFunctionMode):
    """Records (reason, location) of the first op matching ``predicate`` in project code.

    With ``before``, the predicate sees each op's arguments before it runs (``out`` is
    None), so an op that raises can still be the one found."""

    def __init__(self, predicate: Predicate, locator: Locator, before: bool = False) -> None:
        super().__init__()
        self.predicate = predicate
        self.locator = locator
        self.before = before
        self.found: tuple[str, tuple[str, int]] | None = None

    def __torch_function__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        kwargs = kwargs or {}
        if self.before:
            self._test(func, args, kwargs, None)
        out = func(*args, **kwargs)
        if not self.before:
            self._test(func, args, kwargs, out)
        return out

    def _test(self, func: Any, args: Any, kwargs: dict[str, Any], out: Any) -> None:
        if self.found is not None:
            return
        try:
            reason = self.predicate(op_name(func), tuple(args), kwargs, out)
        except Exception:
            reason = None
        if reason:
            where = self._project_frame()
            if where:
                self.found = (reason, where)

    def _project_frame(self) -> tuple[str, int] | None:
        for frame in reversed(traceback.extract_stack()[:-2]):
            if frame.lineno and self.locator.is_project_file(frame.filename):
                return self.locator.relative(frame.filename), frame.lineno
        return None


def trace(run: Callable[[], Any], predicate: Predicate, locator: Locator, before: bool = False
          ) -> tuple[str, tuple[str, int]] | None:
    """Run ``run()`` under an :class:`OpTracer`; exceptions from it are ignored."""
    tracer = OpTracer(predicate, locator, before)
    try:
        with tracer:
            run()
    except Exception:
        pass
    return tracer.found


def _tensors(obj: Any) -> list[torch.Tensor]:
    return [t for _, t in leaves(obj, "")]


def nonfinite_from_finite(name: str, args: tuple[Any, ...], kwargs: dict[str, Any],
                          out: Any) -> str | None:
    outs = [t for t in _tensors(out) if t.is_floating_point()]
    if not outs or all(bool(torch.isfinite(t).all()) for t in outs):
        return None
    ins = [t for t in _tensors((args, kwargs)) if t.is_floating_point()]
    if all(bool(torch.isfinite(t).all()) for t in ins):
        return f"{name}() turned finite inputs into NaN/Inf"
    return None


def nan_from_nan_free(name: str, args: tuple[Any, ...], kwargs: dict[str, Any],
                      out: Any) -> str | None:
    """The first op that made NaN out of inputs without NaN (Inf allowed: a -inf mask
    fill is how attention masks are written; the NaN is the bug)."""
    outs = [t for t in _tensors(out) if t.is_floating_point()]
    if not outs or not any(bool(torch.isnan(t).any()) for t in outs):
        return None
    ins = [t for t in _tensors((args, kwargs)) if t.is_floating_point()]
    if any(bool(torch.isnan(t).any()) for t in ins):
        return None
    base = base_name(name)
    if base in ("softmax", "log_softmax") and ins:
        dim = kwargs.get("dim", args[1] if len(args) > 1 else -1)
        if isinstance(dim, int) and bool(torch.isneginf(ins[0]).all(dim).any()):
            return (f"{name}() over a fully masked row (every position -inf) gives NaN: fill "
                    "masked positions with torch.finfo(dtype).min instead of -inf, or leave "
                    "rows with no valid position out")
    if any(bool(torch.isinf(t).any()) for t in ins):
        return f"{name}() turned Inf inputs into NaN (inf - inf, 0 * inf or inf / inf)"
    return f"{name}() turned finite inputs into NaN"


def inplace_into(watched: dict[int, str]) -> Predicate:
    """An in-place op that writes into a watched tensor's storage (``watched`` maps a
    storage's data pointer to the tensor's name)."""

    def predicate(name: str, args: tuple[Any, ...], kwargs: dict[str, Any], out: Any
                  ) -> str | None:
        target = args[0] if args and isinstance(args[0], torch.Tensor) else None
        if target is None or not is_inplace(name, kwargs):
            return None
        label = watched.get(storage_of(target))
        if label is None:
            return None
        return f"{DUNDER_TEXT.get(name, name + '()')} writes into {label} in place"

    return predicate


DUNDER_TEXT = {"__iadd__": "+=", "__isub__": "-=", "__imul__": "*=", "__itruediv__": "/=",
               "__ipow__": "**=", "__setitem__": "an indexed assignment (x[...] = ...)"}


def is_inplace(name: str, kwargs: dict[str, Any]) -> bool:
    return name in INPLACE_DUNDERS or kwargs.get("inplace") is True or (
        name.endswith("_") and not name.startswith("_"))


def storage_of(tensor: torch.Tensor) -> int:
    try:
        return int(tensor.untyped_storage().data_ptr())
    except Exception:
        return -1


def dtype_changed(expected: torch.dtype) -> Predicate:
    def predicate(name: str, args: tuple[Any, ...], kwargs: dict[str, Any], out: Any
                  ) -> str | None:
        outs = [t for t in _tensors(out) if t.is_floating_point() and t.dtype != expected]
        if not outs:
            return None
        ins = [t for t in _tensors((args, kwargs)) if t.is_floating_point()]
        if any(t.dtype == expected for t in ins):
            others = sorted({str(t.dtype) for t in ins if t.dtype != expected})
            mixed = f" (mixed with a {', '.join(others)} tensor)" if others else ""
            return f"{name}() produced {outs[0].dtype} from {expected} inputs{mixed}"
        return None

    return predicate


RANDOM_OPS = {
    "rand", "randn", "rand_like", "randn_like", "randint", "randint_like", "normal",
    "bernoulli", "uniform", "multinomial", "randperm", "exponential", "poisson",
}
DROPOUT_OPS = {"dropout", "dropout1d", "dropout2d", "dropout3d", "alpha_dropout",
               "feature_alpha_dropout"}


def random_op(name: str, args: tuple[Any, ...], kwargs: dict[str, Any], out: Any) -> str | None:
    name = base_name(name)
    if name in DROPOUT_OPS:
        training = kwargs.get("training", args[2] if len(args) > 2 else True)
        if training:
            return f"{name}() ran with training=True in eval mode"
        return None
    if name in RANDOM_OPS:
        return f"{name}() draws random numbers in eval mode"
    return None


_REDUCTIONS = {
    "softmax", "log_softmax", "sum", "mean", "std", "var", "amax", "amin", "max", "min",
    "norm", "cumsum", "cumprod", "logsumexp", "normalize", "prod", "median", "argmax",
    "argmin", "batch_norm", "instance_norm",
}


def batch_mixing(batch: int) -> Predicate:
    """Ops that combine samples: reductions over dim 0, views that break sample blocks."""

    def predicate(name: str, args: tuple[Any, ...], kwargs: dict[str, Any], out: Any
                  ) -> str | None:
        first = args[0] if args and isinstance(args[0], torch.Tensor) else None
        if first is None or first.dim() == 0 or first.shape[0] != batch:
            return None
        if name == "batch_norm":
            training = kwargs.get("training", args[5] if len(args) > 5 else False)
            return "batch_norm() used batch statistics in eval mode" if training else None
        if name in _REDUCTIONS:
            dim = kwargs.get("dim", args[1] if len(args) > 1 else None)
            if dim in (0, -first.dim()) or (isinstance(dim, (tuple, list)) and 0 in dim):
                return f"{name}(dim=0) reduces across the batch"
            return None
        if name in ("view", "reshape", "flatten", "transpose", "permute", "t", "movedim"):
            outs = _tensors(out)
            if outs and outs[0].dim() >= 1:
                size = outs[0].shape[0]
                if size != batch and size % batch != 0:
                    return f"{name}() moved the batch dimension (dim 0 {batch} -> {size})"
        return None

    return predicate


# ops whose backward reads their own output, so changing it in place breaks backward
SAVES_OUTPUT = {"sigmoid", "tanh", "exp", "relu", "softmax", "log_softmax", "sqrt", "rsqrt",
                "elu", "hardsigmoid", "silu", "expm1", "logsigmoid"}
INPLACE_DUNDERS = {"__iadd__", "__isub__", "__imul__", "__itruediv__", "__ipow__",
                   "__setitem__"}


def inplace_on_saved_output() -> Predicate:
    """An in-place op on a tensor whose producer's backward needs it unchanged."""
    produced: dict[int, tuple[str, torch.Tensor]] = {}

    def predicate(name: str, args: tuple[Any, ...], kwargs: dict[str, Any], out: Any
                  ) -> str | None:
        target = args[0] if args and isinstance(args[0], torch.Tensor) else None
        if is_inplace(name, kwargs) and target is not None and id(target) in produced:
            return f"{name}() modifies the output of {produced[id(target)][0]}() in place"
        if name in SAVES_OUTPUT and isinstance(out, torch.Tensor) and out.requires_grad:
            produced[id(out)] = (name, out)
        return None

    return predicate


def squeezed_batch(name: str, args: tuple[Any, ...], kwargs: dict[str, Any], out: Any
                   ) -> str | None:
    """A ``squeeze()`` without a dim that removed a batch dimension of size 1."""
    first = args[0] if args and isinstance(args[0], torch.Tensor) else None
    if name != "squeeze" or first is None or len(args) > 1 or "dim" in kwargs:
        return None
    if (first.dim() >= 1 and first.shape[0] == 1 and isinstance(out, torch.Tensor)
            and out.dim() < first.dim()):
        return "squeeze() without a dim dropped the batch dimension"
    return None
