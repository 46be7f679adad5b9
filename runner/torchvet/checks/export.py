"""export.* (opt-in): the model survives the ways torch turns it into a graph.

- ``export.torch_export``: ``torch.export.export(model, args, kwargs, strict=False)``
  captures it, and the exported program reproduces the eager outputs;
- ``export.torchscript``: ``torch.jit.script`` compiles it (when it cannot, the verdict
  says why, at which line, and whether ``torch.jit.trace`` would do instead);
- ``export.compile``: ``torch.compile`` (backend ``aot_eager``: TorchDynamo and
  AOTAutograd without generating code, so it stays CPU-cheap) runs and matches eager;
  graph breaks, counted with ``torch._dynamo.explain``, warn.

Each runs under its catalogue budget (``CheckMeta.budget``): past it, the check skips
with a reason instead of eating the model's timeout.
"""

from __future__ import annotations

import linecache
import time
import traceback
import warnings
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..unit.context import CheckContext
from ..unit.inputs import Inputs
from ..unit.pytree import leaves
from ..verdict import Location, Outcome, failed, passed, warned
from .registry import check
from .shared.comparison import first_difference, seeded_eval

COMPILE_BACKEND = "aot_eager"


def _where(ctx: CheckContext, exc: BaseException) -> Location:
    """The user's line: torch's compilers print it in the message rather than the stack."""
    text = "".join(traceback.format_exception(exc))
    return ctx.locator.in_text(str(exc)) or ctx.locator.for_exception(exc) or \
        ctx.locator.in_text(text) or ctx.where_model()


def _source(ctx: CheckContext, where: Location) -> str:
    if not where:
        return ""
    path = Path(where[0])
    candidates = [path] if path.is_absolute() else [ctx.locator.report_root / path]
    for candidate in candidates:
        line = linecache.getline(str(candidate), where[1]).strip()
        if line:
            return f" (`{line}`)"
    return ""


def _at(where: Location) -> str:
    return f" at {where[0]}:{where[1]}" if where else ""


def _reason(exc: BaseException, limit: int = 220) -> str:
    """The first meaningful line of a compiler's error message."""
    for line in str(exc).splitlines():
        line = line.strip()
        if line and not line.startswith(("File ", "~", "^")):
            line = line.split("tensor(", 1)[0].rstrip(" ([{,").rstrip(":")
            text = f"{type(exc).__name__}: {line}"
            return text if len(text) <= limit else text[: limit - 3] + "..."
    return type(exc).__name__


def _compare(ctx: CheckContext, reference: Any, got: Any) -> str | None:
    """None when ``got`` matches the eager outputs (cross-batch tolerance: compilers may
    reorder float operations)."""
    diff = first_difference(reference, got, lambda t: ctx.tolerance(t.dtype, cross_batch=True))
    return str(diff) if diff is not None else None


def _model_and_inputs(ctx: CheckContext) -> tuple[nn.Module, Inputs, Any]:
    ctx.eval_output()  # forward.runs owns a failing forward
    model = ctx.fresh_copy().eval()
    inputs = ctx.inputs()
    return model, inputs, seeded_eval(ctx, model, inputs)


# --------------------------------------------------------------------------- torch.export


class _FlatOutputs(nn.Module):
    """Returns the model's output leaves as a tuple (for unregistered output types)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, *args: Any, **kwargs: Any) -> tuple[torch.Tensor, ...]:
        return tuple(t for _, t in leaves(self.model(*args, **kwargs)))


def _unregistered_output(exc: BaseException) -> str | None:
    text = str(exc)
    if "in output, which is not a known type" in text or "register a pytree" in text:
        start = text.find("<class '")
        if start >= 0:
            return text[start + 8: text.find("'>", start)].rpartition(".")[2]
        return "the output type"
    return None


def _export(model: nn.Module, inputs: Inputs) -> Any:
    return torch.export.export(model, tuple(inputs.args), kwargs=dict(inputs.kwargs),
                               strict=False)


def _export_failure(ctx: CheckContext, exc: BaseException) -> Outcome:
    where = _where(ctx, exc)
    text = f"{type(exc).__name__} {exc}"
    if "data-dependent" in text or "GuardOnDataDependent" in text:
        return failed(
            f"torch.export cannot capture the model: data-dependent control flow{_at(where)}"
            f"{_source(ctx, where)} branches on a tensor's value, which a graph cannot hold; "
            "use torch.where(...) or torch.cond(...), or move the decision out of forward",
            traceback.format_exc(), where)
    return failed(
        f"torch.export cannot capture the model: {_reason(exc)}{_at(where)}; "
        "torch.export.draft_export(model, args) lists every issue at once",
        traceback.format_exc(), where)


@check("export.torch_export")
def torch_export(ctx: CheckContext) -> Outcome:
    model, inputs, reference = _model_and_inputs(ctx)
    started = time.perf_counter()
    flattened = ""
    try:
        program = _export(model, inputs)
    except Exception as exc:
        flattened = _unregistered_output(exc) or ""
        if not flattened:
            return _export_failure(ctx, exc)
        try:
            program = _export(_FlatOutputs(model), inputs)
        except Exception as again:
            return _export_failure(ctx, again)
    try:
        got = seeded_eval(ctx, program.module(), inputs, set_eval=False)
    except Exception as exc:
        return _export_failure(ctx, exc)
    elapsed = time.perf_counter() - started
    expected = tuple(t for _, t in leaves(reference)) if flattened else reference
    diff = _compare(ctx, expected, got)
    if diff:
        return failed(
            f"the exported program's {diff} from eager: export specialised a Python value "
            "or branch to the example inputs; make it a tensor operation (or an input)",
        )
    nodes = sum(1 for _ in program.graph.nodes)
    if flattened:
        return warned(
            f"torch.export needs {flattened} registered as a pytree node: call "
            f"torch.export.register_dataclass({flattened}) (or torch.utils._pytree."
            "register_pytree_node) before exporting; with flat outputs the model exports "
            f"and matches eager ({nodes} nodes, {elapsed:.1f} s)",
            where=ctx.where_model(),
        )
    return passed(f"exported with strict=False ({nodes} graph nodes) and matches eager "
                  f"in {elapsed:.1f} s")


# --------------------------------------------------------------------------- TorchScript


def _try_trace(model: nn.Module, inputs: Inputs) -> str:
    args, kwargs = tuple(inputs.args), dict(inputs.kwargs)
    try:
        if kwargs and not args:
            torch.jit.trace(model, example_kwarg_inputs=kwargs, strict=False,
                            check_trace=False)
        elif args and not kwargs:
            torch.jit.trace(model, args, strict=False, check_trace=False)
        else:
            return "torch.export is the supported way to export it"
    except Exception as exc:
        return (f"torch.jit.trace fails too ({_reason(exc, 120)}), so use torch.export "
                "(or add type annotations and TorchScript-compatible code)")
    return ("torch.jit.trace works on these inputs (it records one path and drops Python "
            "control flow), so trace instead if that is enough, or use torch.export")


@check("export.torchscript")
def torchscript(ctx: CheckContext) -> Outcome:
    model, inputs, reference = _model_and_inputs(ctx)
    started = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", DeprecationWarning)
        try:
            scripted = torch.jit.script(model)
        except Exception as exc:
            where = _where(ctx, exc)
            fallback = _try_trace(ctx.fresh_copy().eval(), inputs)
            return failed(
                f"torch.jit.script cannot compile the model: {_reason(exc)}"
                f"{_at(where)}; {fallback}{_deprecation(caught)}",
                traceback.format_exc(), where)
        got = seeded_eval(ctx, scripted, inputs)
    elapsed = time.perf_counter() - started
    diff = _compare(ctx, reference, got)
    if diff:
        return failed(f"the scripted model's {diff} from eager: a Python-side value was "
                      "frozen at compile time; make it a tensor operation or an input")
    return passed(f"torch.jit.script compiles the model and matches eager in {elapsed:.1f} s"
                  f"{_deprecation(caught)}")


def _deprecation(caught: list[warnings.WarningMessage]) -> str:
    if any(issubclass(w.category, DeprecationWarning) and "torch.jit" in str(w.message)
           for w in caught):
        return (f" (torch {torch.__version__.split('+')[0]} deprecates TorchScript: "
                "export.torch_export checks its successor)")
    return ""


# --------------------------------------------------------------------------- torch.compile


def _break_location(ctx: CheckContext, reason: Any) -> Location:
    for frame in reversed(list(getattr(reason, "user_stack", None) or [])):
        filename, line = getattr(frame, "filename", ""), getattr(frame, "lineno", None)
        if line and ctx.locator.is_project_file(filename):
            return ctx.locator.relative(filename), int(line)
    return None


_BREAK_MEANINGS = (
    ("generic_jump", "an `if`/`while` on a tensor's value"),
    ("Tensor.item()", "a .item() call pulls a value out of a tensor"),
    ("data dependent", "an op whose output shape depends on values"),
    ("builtin: print", "a print() call"),
)


def _break_text(reason: Any) -> str:
    text = str(getattr(reason, "reason", reason)).strip()
    first = text.splitlines()[0] if text else "unknown reason"
    first = first if len(first) <= 160 else first[:157] + "..."
    for marker, meaning in _BREAK_MEANINGS:
        if marker in text:
            return f"{meaning} ({first})"
    return first


def _unsupported_text(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    hints = [line for line in lines if line.startswith("Hint:")]
    head = lines[0] if lines else "unsupported code"
    return f"{head}" + (f" ({hints[0]})" if hints else "")


@check("export.compile")
def compile_(ctx: CheckContext) -> Outcome:
    # torch._dynamo costs seconds to import; only this opt-in check needs it
    import torch._dynamo as dynamo
    from torch._dynamo.utils import counters

    model, inputs, reference = _model_and_inputs(ctx)
    started = time.perf_counter()
    args, kwargs = tuple(inputs.args), dict(inputs.kwargs)
    dynamo.reset()
    counters.clear()
    try:
        explanation = dynamo.explain(model)(*args, **kwargs)
        unsupported = list(counters.get("unimplemented", {}))
        dynamo.reset()
        compiled = torch.compile(model, backend=COMPILE_BACKEND)
        got = seeded_eval(ctx, compiled, inputs)
    except Exception as exc:
        where = _where(ctx, exc)
        return failed(
            f"torch.compile (backend {COMPILE_BACKEND}) fails: {_reason(exc)}{_at(where)}; "
            "wrap the offending code in torch.compiler.disable or make it traceable",
            traceback.format_exc(), where)
    finally:
        dynamo.reset()
    elapsed = time.perf_counter() - started
    diff = _compare(ctx, reference, got)
    if diff:
        return failed(f"the compiled model's {diff} from eager (backend {COMPILE_BACKEND}): "
                      "a Python-side value was baked into the graph; make it a tensor "
                      "operation or an input")
    breaks = int(getattr(explanation, "graph_break_count", 0) or 0)
    graphs = int(getattr(explanation, "graph_count", 0) or 0)
    if graphs == 0:
        reason = _unsupported_text(unsupported[0]) if unsupported else "no reason recorded"
        return warned(
            "torch.compile captured no graph: TorchDynamo runs the whole forward eagerly, "
            f"so compiling gains nothing — {reason}",
            "\n\n".join(unsupported))
    if breaks:
        reasons = list(getattr(explanation, "break_reasons", []) or [])
        first = reasons[0] if reasons else None
        where = _break_location(ctx, first) if first is not None else None
        details = "\n".join(
            f"{_break_text(r)}{_at(_break_location(ctx, r))}" for r in reasons)
        return warned(
            f"torch.compile splits the model into {graphs} graphs ({breaks} graph "
            f"break{'s' if breaks != 1 else ''}); the first{_at(where)}{_source(ctx, where)}: "
            f"{_break_text(first) if first is not None else 'unknown'}: rewrite it with "
            "tensor ops (torch.where instead of `if` on a tensor, no .item()/print) to get "
            f"one graph; outputs match eager ({elapsed:.1f} s)",
            details, where)
    return passed(f"torch.compile (backend {COMPILE_BACKEND}) gives one graph and matches "
                  f"eager in {elapsed:.1f} s")
