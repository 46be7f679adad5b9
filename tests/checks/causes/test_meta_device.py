"""checks.causes.meta_device: on the meta device, a tensor left on the CPU is caught where
it meets the model's tensors and traced to the line that created it; legal mixes are not
flagged. (The portability.device verdicts built on it are in test_portability.py.)"""

from __future__ import annotations

import contextlib
from pathlib import Path

import torch
from torch import nn

from tests.helpers import ROOT, line_in
from torchvet.checks.causes.meta_device import META, DeviceTracer, describe_tensor
from torchvet.unit.locate import Locator

HERE = Path(__file__)


class OnesWithoutDevice(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(3, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        offset = torch.ones(3)  # the CPU tensor: no device=
        return self.fc(x) + offset


class ZeroDimConstant(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(3, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x) * torch.tensor(2.0)  # 0-dim CPU tensors mix with any device


def meta_run(model: nn.Module) -> DeviceTracer:
    tracer = DeviceTracer(Locator([HERE.parent], ROOT), attributes={})
    model.to(META)
    with contextlib.suppress(RuntimeError), torch.no_grad(), tracer:
        model(torch.randn(2, 3, device=META))  # a mixing op raises once it is recorded
    return tracer


def test_a_tensor_created_on_the_cpu_is_traced_to_its_line() -> None:
    tracer = meta_run(OnesWithoutDevice())
    assert len(tracer.mixing) == 1
    event = tracer.mixing[0]
    assert event.origin.kind == "created" and event.origin.name == "torch.ones()"
    line = line_in(HERE, "# the CPU tensor: no device=")
    assert event.origin.where == ("tests/checks/causes/test_meta_device.py", line)
    assert event.where == ("tests/checks/causes/test_meta_device.py", line + 1)  # where it met
    assert describe_tensor(event.stray) == "cpu, shape (3,), float32"


def test_zero_dim_cpu_constants_are_legal() -> None:
    assert meta_run(ZeroDimConstant()).mixing == []
