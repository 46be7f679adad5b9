"""portability.*: the model runs on other devices and under mixed precision.

``portability.device`` runs the eval and train forwards with the model and its inputs on
the ``meta`` device (see :mod:`.meta_device`), where a tensor left on the CPU shows up
without a GPU. With CUDA available it also runs a real forward and backward on the GPU
and compares CPU and GPU outputs with TF32 disabled.

``portability.autocast`` runs the eval forward under ``torch.autocast`` (bfloat16 on the
CPU; float16 and bfloat16 on CUDA) and names the first output leaf that goes non-finite.
Mixed precision is an optional capability (docs/checks.md): the check fails only where
the spec declares ``amp=True`` (the model trains in mixed precision); otherwise the same
verdict is a warning that says how to make it blocking.
"""

from __future__ import annotations

import contextlib
import traceback
from collections.abc import Iterator
from typing import Any

import torch
from torch import nn

from ..results import Status
from ..unit import optrace
from ..unit.context import CheckContext
from ..unit.copies import meta_copy
from ..unit.inputs import Inputs
from ..unit.isolation import holds_fake_quant
from ..unit.losses import LossProblem
from ..unit.pytree import floating_leaves, leaves, map_tensors
from ..unit.seeding import derived_seed, seed_everything
from ..unit.text import dtype_name, index_str, one_line
from ..unit.torch_compat import autocast_kernel_gap
from ..verdict import Outcome, Skip, failed, passed, warned
from .causes.meta_device import META, describe_tensor, meta_verdict, run_on_meta, to_device
from .registry import check
from .shared.comparison import Difference, first_difference, seeded_eval

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


def cuda_round(ctx: CheckContext) -> tuple[Outcome | None, str]:
    """Real forward (eval) and forward+backward (train) on the GPU, and CPU/GPU parity."""
    device = _cuda_device(ctx)
    cpu = torch.device("cpu")
    cpu_model = ctx.fresh_copy().to(cpu)
    gpu_model = ctx.fresh_copy().to(device)
    cpu_inputs = ctx.inputs().map(to_device(cpu))
    gpu_inputs = cpu_inputs.map(to_device(device))
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
                return failed(f"{path} ({describe_tensor(tensor)}) stays on the CPU when the "
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
    inputs = ctx.inputs(size).map(to_device(device))
    target = ctx.target(size)
    target = map_tensors(target, to_device(device)) if target is not None else None
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
    model = meta_copy(ctx.model, ctx.fresh_copy)  # the weights' values are never copied
    try:
        model.to(META)
    except Exception as exc:
        raise Skip(f"the model cannot move to the meta device ({one_line(exc)}), so the "
                   "device move is not checked") from exc
    real = ctx.inputs()
    inputs = real.map(to_device(META))
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


AMP_HINT = ("warned, not failed: the spec does not declare amp; declare amp='bf16' (or "
            "'fp16') if the model trains in mixed precision, to make this check blocking")


def relies_on_amp(ctx: CheckContext) -> bool:
    """The spec declares that the model trains in mixed precision (``amp``)."""
    return bool(getattr(ctx.spec, "amp", False))


@check("portability.autocast")
def autocast(ctx: CheckContext) -> Outcome:
    """Autocast's verdict, blocking only for a model that declares ``amp``."""
    outcome = _autocast(ctx)
    if outcome.status is Status.FAILED and not relies_on_amp(ctx):
        return warned(f"{outcome.message} ({AMP_HINT})", outcome.details, outcome.where,
                      outcome.data)
    return outcome


def _autocast(ctx: CheckContext) -> Outcome:
    if not any(p.is_floating_point() for p in ctx.model.parameters()):
        raise Skip("the model has no floating-point parameters: autocast changes nothing")
    if holds_fake_quant(ctx.model):
        raise Skip("the model simulates int8 with fake-quant modules (torch.ao.quantization "
                   "QAT), which run in float32 and have no bfloat16/float16 kernels: mixed "
                   "precision does not apply to it")
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
            model, inputs = ctx.memory.eval_copy(ctx), ctx.inputs()
        else:
            target = _cuda_device(ctx)
            model, inputs = ctx.fresh_copy().to(target), ctx.inputs().map(to_device(target))
        model.eval()

        def run(model: nn.Module = model, inputs: Inputs = inputs, device_type: str = device_type,
                low: torch.dtype = low) -> Any:
            seed_everything(derived_seed(ctx.seed, "eval", ctx.batch_size, 0))
            with torch.no_grad(), torch.autocast(device_type, dtype=low):
                return ctx.call(model, inputs)

        try:
            out = run()
        except Exception as exc:
            gap = autocast_kernel_gap(exc, device_type, name)
            if gap is not None:
                raise Skip(gap) from exc
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
