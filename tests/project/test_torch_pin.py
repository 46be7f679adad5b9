"""project.torch_pin: a run says once, before the units start, when the torch it will
import is not the one the project pins or is a CUDA build on a machine without a GPU —
read from metadata, torch never imported."""

from __future__ import annotations

from pathlib import Path

import pytest

from torchvet.project.torch_pin import (
    has_nvidia_gpu,
    is_cuda_build,
    pinned_torch,
    torch_warnings,
)
from torchvet.session import select_units


def test_the_pin_is_read_from_the_projects_dependencies() -> None:
    assert pinned_torch({"project": {"dependencies": ["numpy", "torch == 2.4.0"]}}) == "2.4.0"
    assert pinned_torch({"project": {"dependencies": ["torch>=2.4"]}}) is None
    assert pinned_torch({}) is None


def test_cuda_builds_are_told_by_local_version_or_nvidia_requirements() -> None:
    assert is_cuda_build("2.5.1+cu121", [])
    assert is_cuda_build("2.5.1", ["nvidia-cublas-cu12==12.4.5.8; platform_system == 'Linux'"])
    assert not is_cuda_build("2.5.1+cpu", [])
    assert not is_cuda_build("2.5.1", ["filelock", "sympy"])


def test_a_gpu_is_a_device_node(tmp_path: Path) -> None:
    assert not has_nvidia_gpu(tmp_path)
    (tmp_path / "nvidia0").touch()
    assert has_nvidia_gpu(tmp_path)


def test_the_warnings_name_the_fix() -> None:
    pin, cuda = torch_warnings("2.13.0+cu126", "2.4.0", cuda_build=True, gpu=False)
    assert "pins torch==2.4.0" in pin and "-c <(echo torch==2.4.0)" in pin
    assert "CUDA build but this machine has no NVIDIA GPU" in cuda
    assert "pip install torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu" in cuda
    assert torch_warnings("2.4.0+cpu", "2.4.0", cuda_build=False, gpu=False) == []
    assert torch_warnings("2.4.0+cu121", None, cuda_build=True, gpu=True) == []


def test_a_run_notes_a_torch_other_than_the_pinned_one(tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "pyproject.toml").write_text(
        '[project]\nname = "p"\nversion = "0"\ndependencies = ["torch==1.0.0"]\n'
        '[project.entry-points."torchvet.models"]\nnet = "p:make"\n')
    selection = select_units(str(tmp_path), (), (), None)
    assert any("pins torch==1.0.0" in note for note in selection.notes)
