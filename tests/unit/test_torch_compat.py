"""The torch compatibility helpers: each branch, by monkeypatching the feature probes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

from torchvet.unit import torch_compat


def _saved(tmp_path: Path) -> Path:
    path = tmp_path / "state.pt"
    torch.save({"w": torch.arange(3.0)}, path)
    return path


def test_load_weights_maps_a_path_by_its_string_name(tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    seen: dict[str, Any] = {}
    real = torch.load

    def strict_load(f: Any, **kwargs: Any) -> Any:  # torch 2.1: mmap only with a str
        seen.update(kwargs, f=f)
        if kwargs.get("mmap") and not isinstance(f, str):
            raise ValueError("f must be a string filename in order to use mmap argument")
        return real(f, **kwargs)

    monkeypatch.setattr(torch_compat, "_load_accepts_mmap", lambda: True)
    monkeypatch.setattr(torch, "load", strict_load)
    loaded = torch_compat.load_weights(_saved(tmp_path))
    assert seen["mmap"] is True and seen["weights_only"] is True
    assert torch.equal(loaded["w"], torch.arange(3.0))


def test_load_weights_without_mmap_support(tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    seen: dict[str, Any] = {}
    real = torch.load

    def old_load(f: Any, **kwargs: Any) -> Any:
        seen.update(kwargs)
        return real(f, **kwargs)

    monkeypatch.setattr(torch_compat, "_load_accepts_mmap", lambda: False)
    monkeypatch.setattr(torch, "load", old_load)
    loaded = torch_compat.load_weights(_saved(tmp_path))
    assert "mmap" not in seen
    assert torch.equal(loaded["w"], torch.arange(3.0))


def test_flop_counter_present_and_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    assert torch_compat.flop_counter_mode() is not None
    import sys
    monkeypatch.setitem(sys.modules, "torch.utils.flop_counter", None)
    assert torch_compat.flop_counter_mode() is None


def _raised_inside_torch(message: str) -> RuntimeError:
    # code compiled under a file name inside torch's package, as the Python wrappers of
    # the fused attention kernels are
    torch_file = str(Path(torch.__file__).parent / "nn" / "modules" / "activation.py")
    namespace: dict[str, Any] = {"MESSAGE": message}
    exec(compile("def forward():\n    raise RuntimeError(MESSAGE)\n", torch_file, "exec"),
         namespace)
    try:
        namespace["forward"]()
    except RuntimeError as exc:
        return exc
    raise AssertionError("unreachable")


def _raised_in_model(message: str) -> RuntimeError:
    try:
        raise RuntimeError(message)
    except RuntimeError as exc:
        return exc


GAP = "expected scalar type BFloat16 but found Float"


def test_old_torch_kernel_gap_is_torchs_limit_naming_version_and_op() -> None:
    why = torch_compat.autocast_kernel_gap(_raised_inside_torch(GAP), "cpu", "bfloat16",
                                           version=(2, 1))
    assert why is not None
    assert "torch 2.1's CPU autocast has no bfloat16 kernel for activation.forward" in why


def test_same_error_from_the_models_code_is_the_models() -> None:
    assert torch_compat.autocast_kernel_gap(_raised_in_model(GAP), "cpu", "bfloat16",
                                            version=(2, 1)) is None


def test_same_error_on_a_torch_with_the_kernels_is_the_models() -> None:
    assert torch_compat.autocast_kernel_gap(_raised_inside_torch(GAP), "cpu", "bfloat16",
                                            version=(2, 13)) is None


def test_other_errors_inside_old_torch_are_the_models() -> None:
    assert torch_compat.autocast_kernel_gap(_raised_inside_torch("shape mismatch"), "cpu",
                                            "bfloat16", version=(2, 1)) is None
