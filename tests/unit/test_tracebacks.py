"""unit.tracebacks: a verdict's traceback starts at the user's code — torchvet's frames
hidden behind one marker line, kept with full_trace, kept whole when they are all there
is (a fault of torchvet's own)."""

from __future__ import annotations

import re
from pathlib import Path

import torch
from torch import nn

from torchvet.checks.inline import check_inline
from torchvet.results import Status
from torchvet.unit.tracebacks import MARKER, PACKAGE_DIR, hide_torchvet_frames

HERE = Path(__file__).resolve()


class Raises(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(4, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x).view(3, -1)  # a shape bug: the batch is 2


def raises() -> dict:
    return {"model": Raises(), "inputs": torch.randn(2, 4)}


def details(full_trace: bool) -> str:
    result = check_inline(raises, checks=["forward.runs"], full_trace=full_trace)["forward.runs"]
    assert result.status is Status.FAILED, result.message
    return result.details


def test_the_traceback_starts_at_the_users_code() -> None:
    text = details(full_trace=False)
    assert MARKER in text
    assert PACKAGE_DIR not in text, text
    assert f'File "{HERE}"' in text and "self.fc(x).view(3, -1)" in text
    assert "RuntimeError" in text.splitlines()[-1]


def test_full_trace_keeps_torchvet_frames() -> None:
    text = details(full_trace=True)
    assert MARKER not in text
    assert f'File "{PACKAGE_DIR}/checks/forward.py"' in text and f'File "{HERE}"' in text


OURS = f'{PACKAGE_DIR}/unit/context.py'
TEXT = f"""forward.runs failed
Traceback (most recent call last):
  File "{OURS}", line 10, in eval_output
    return self.call(model, inputs)
           ^^^^^^^^^^^^^^^^^^^^^^^^
  File "/project/models.py", line 5, in forward
    return x.view(3, -1)
RuntimeError: shape '[3, -1]' is invalid

During handling of the above exception, another exception occurred:

Traceback (most recent call last):
  File "{OURS}", line 12, in eval_output
    raise KeyError(1)
KeyError: 1"""


def test_each_traceback_of_a_chain_is_filtered_on_its_own() -> None:
    out = hide_torchvet_frames(TEXT).splitlines()
    first = out.index("Traceback (most recent call last):")
    assert out[first + 1] == MARKER
    assert out[first + 2] == '  File "/project/models.py", line 5, in forward'
    assert "RuntimeError: shape '[3, -1]' is invalid" in out
    # the second traceback holds only torchvet frames: kept whole, no marker
    second = len(out) - 1 - out[::-1].index("Traceback (most recent call last):")
    assert out[second + 1].startswith(f'  File "{OURS}", line 12') and out[-1] == "KeyError: 1"
    assert out.count(MARKER) == 1


def test_text_without_a_traceback_is_left_alone() -> None:
    assert hide_torchvet_frames("weight: grad None in 3 step(s)") == (
        "weight: grad None in 3 step(s)")


class PlainTensor(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(4, 2)
        self.scale = torch.ones(2)  # a plain attribute: stays on the CPU

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x) * self.scale


def plain_tensor() -> dict:
    return {"model": PlainTensor(), "inputs": torch.randn(2, 4)}


def test_frames_inside_torch_collapse_to_one_line_unless_full_trace() -> None:
    """Issue 26: a meta-device failure ran through a dozen frames of torch/_refs,
    _prims, _library; the details now end with the user's line and the one that raised."""
    short, full = (check_inline(plain_tensor, checks=["portability.device"],
                                full_trace=f)["portability.device"].details
                   for f in (False, True))
    torch_dir = str(Path(torch.__file__).resolve().parent)
    lines = short.splitlines()
    collapsed = [ln for ln in lines if re.fullmatch(
        r"  … \d+ frames inside torch … \(--full-trace shows them\)", ln)]
    assert collapsed, short
    assert sum(torch_dir in ln for ln in lines if ln.startswith("  File ")) == 1  # raised
    user = next(i for i, ln in enumerate(lines) if ln.startswith(f'  File "{HERE}"'))
    assert lines[user + 1].strip() == "return self.fc(x) * self.scale"
    assert lines[-1].startswith("RuntimeError") and lines[-3].startswith(f'  File "{torch_dir}')
    hidden = sum(int(re.search(r"\d+", ln).group()) for ln in collapsed)  # type: ignore[union-attr]
    assert sum(torch_dir in ln for ln in full.splitlines() if ln.startswith("  File ")) >= (
        hidden + 1)
    assert "frames inside torch" not in full


def test_a_lone_torch_frame_stays_and_a_run_in_the_middle_goes_whole() -> None:
    torch_file = str(Path(torch.__file__).resolve().parent / "nn" / "modules" / "module.py")
    text = "\n".join([
        "Traceback (most recent call last):",
        f'  File "{torch_file}", line 1, in _call_impl', "    return forward_call()",
        '  File "/project/models.py", line 5, in forward', "    return self.block(x)",
        *(f'  File "{torch_file}", line {i}, in inner\n    return f()' for i in range(3)),
        '  File "/project/layers.py", line 9, in forward', "    raise ValueError('x')",
        "ValueError: x"])
    out = hide_torchvet_frames(text).splitlines()
    assert out[1] == f'  File "{torch_file}", line 1, in _call_impl'  # one: not worth a line
    assert out[5] == "  … 3 frames inside torch … (--full-trace shows them)"
    assert out[6:] == ['  File "/project/layers.py", line 9, in forward',
                       "    raise ValueError('x')", "ValueError: x"]
