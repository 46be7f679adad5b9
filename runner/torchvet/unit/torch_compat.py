"""The one home for torch APIs whose signature or behaviour changed inside the supported
range, so a check calls one function instead of testing the torch version itself.

Each helper detects the feature (``inspect.signature``, ``hasattr``) rather than comparing
version numbers, except where the question is what kernels a release ships (autocast
coverage), which only the version answers. A gap of the installed torch is reported as
that torch's limit, never as the user's defect.
"""

from __future__ import annotations

import inspect
import traceback
from pathlib import Path
from types import TracebackType
from typing import Any

import torch

# CPU autocast reaches the fused transformer fast paths
# (torch._native_multi_head_attention, torch._transformer_encoder_layer_fwd) from 2.6;
# older releases raise a dtype mismatch from inside torch on a healthy model.
AUTOCAST_FASTPATH_COVERED = (2, 6)

_KERNEL_GAPS = ("expected scalar type BFloat16 but found Float",
                "expected scalar type Half but found Float",
                "mat1 and mat2 must have the same dtype",
                "AutocastCPU only support Bfloat16")


def torch_version() -> tuple[int, int]:
    """The installed torch's (major, minor)."""
    major, minor = torch.__version__.split("+")[0].split(".")[:2]
    return int(major), int(minor)


def _load_accepts_mmap() -> bool:
    return "mmap" in inspect.signature(torch.load).parameters


def load_weights(path: Path) -> Any:
    """``torch.load(weights_only=True)`` of a checkpoint file, memory-mapped where torch
    can map it. The file name is passed as a ``str``: torch 2.1/2.2 map only a string
    file name and raise ``ValueError`` for a ``Path``."""
    if _load_accepts_mmap():
        return torch.load(str(path), weights_only=True, map_location="cpu", mmap=True)
    return torch.load(str(path), weights_only=True, map_location="cpu")


def flop_counter_mode() -> Any | None:
    """``torch.utils.flop_counter.FlopCounterMode``, or None where torch lacks it."""
    try:
        from torch.utils.flop_counter import FlopCounterMode  # absent before torch 2.1
    except ImportError:
        return None
    return FlopCounterMode


def _innermost_torch_op(tb: TracebackType | None) -> str | None:
    frames = traceback.extract_tb(tb)
    if not frames:
        return None
    root = str(Path(torch.__file__).parent)
    last = frames[-1]
    if not last.filename.startswith(root):
        return None
    module = Path(last.filename).stem
    return f"{module}.{last.name}"


def autocast_kernel_gap(exc: BaseException, device_type: str, dtype_name: str,
                        version: tuple[int, int] | None = None) -> str | None:
    """Why the installed torch, not the model, failed under autocast; None for a model's
    own failure. A dtype mismatch counts as torch's gap only when it is raised inside
    torch's own code (the model's code is the innermost frame otherwise) by a release
    whose autocast misses the fused fast paths."""
    found = version or torch_version()
    if found >= AUTOCAST_FASTPATH_COVERED or not isinstance(exc, RuntimeError):
        return None
    if not any(gap in str(exc) for gap in _KERNEL_GAPS):
        return None
    op = _innermost_torch_op(exc.__traceback__)
    if op is None:
        return None
    fixed = ".".join(map(str, AUTOCAST_FASTPATH_COVERED))
    return (f"torch {found[0]}.{found[1]}'s {device_type.upper()} autocast has no "
            f"{dtype_name} kernel for {op} (it does from torch {fixed}), so this torch "
            "cannot run the model under autocast; this is a limit of torch, not of the model")
