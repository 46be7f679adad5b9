"""forward.*: each eval-mode bug caught by the right check, with the culprit named and
located; declared output shapes and dtypes honoured."""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from tests.fixtures import models_buggy as buggy
from tests.helpers import assert_status, line_in, verdict, vet
from torchvet.checks import forward
from torchvet.checks.catalogue import CATALOGUE
from torchvet.results import Status

BUGGY_FILE = Path(buggy.__file__)
WARN_CHECKS = {"forward.probabilities", "forward.warnings"}
FORWARD_BUGS = {name: bug for name, bug in buggy.BUGS.items() if bug[0].startswith("forward.")}

# where each bug must be reported: a snippet of the culprit line in models_buggy.py
EXPECTED_LINE = {
    "batch_mixing_view": "# BUG: meant h.transpose",
    "softmax_over_batch": "# BUG: normalises across",
    "log_of_activations": "# BUG: log of values",
    "numpy_constant": "# BUG: float64 creeps",
    "functional_dropout": "# BUG: training defaults",
    "squeeze_all": "# BUG: at batch size 1",
    "hard_coded_batch": "# BUG: batch size hard-coded",
    "overflow": "# BUG: exp overflows",
    "batch_stats_in_eval": "h = F.batch_norm(",
    "eval_noise": "# BUG: noise also",
    "probabilities_into_ce": "class ProbabilityHead",
    "sigmoid_into_bce_with_logits": "class SigmoidHead",
    "transposed_output": "class Transposed",
    "no_tensor_output": "class NoTensor",
    "shape_error": "# BUG: 8 features",
    "scales_input_in_place": "# BUG: halves the caller's tensor",
    "implicit_softmax_dim": "# BUG: no dim",
}


@pytest.mark.parametrize("name", sorted(FORWARD_BUGS))
def test_bug_is_caught_by_its_check(name: str) -> None:
    check_id, fragment = FORWARD_BUGS[name]
    result = verdict(getattr(buggy, name), check_id)
    expected = Status.WARNED if check_id in WARN_CHECKS else Status.FAILED
    assert_status(result, expected, fragment)
    assert result.file and result.file.endswith("models_buggy.py"), result.file
    assert result.line == line_in(BUGGY_FILE, EXPECTED_LINE[name]), (result.line,
                                                                       result.message)


def test_every_forward_check_has_a_bug() -> None:
    covered = {check for check, _ in FORWARD_BUGS.values()}
    wanted = {c for c in CATALOGUE if c.startswith("forward.")}
    assert wanted <= covered, wanted - covered


def test_buggy_fixtures_keep_their_bug_comment_on_the_reported_line() -> None:
    source = inspect.getsource(buggy)
    assert source.count("# BUG") >= 15


def test_forward_failure_makes_dependent_checks_skip_naming_forward_runs() -> None:
    results = vet(buggy.shape_error, ["forward.runs", "forward.finite", "forward.dtype"])
    assert_status(results["forward.runs"], Status.FAILED, "mat1 and mat2")
    assert_status(results["forward.finite"], Status.SKIPPED, "see forward.runs")


def test_output_shape_declarations() -> None:
    def declared(shape: Any) -> Any:
        return lambda: {"model": nn.Linear(4, 3), "output_shape": shape}

    assert_status(verdict(declared([-1, 3]), "forward.shape"), Status.PASSED)
    assert_status(verdict(declared([3]), "forward.shape"), Status.PASSED)
    assert_status(verdict(declared([-1, 5]), "forward.shape"), Status.FAILED, "declared (*, 5)")


def test_output_dtype_declaration_accepts_intended_float64() -> None:
    def factory() -> dict[str, Any]:
        return {"model": buggy.NumpyConstant(), "output_dtype": "float64"}

    assert_status(verdict(factory, "forward.dtype"), Status.PASSED)


def test_dtype_messages_write_dtypes_as_users_do() -> None:
    assert_status(verdict(lambda: nn.Linear(4, 2), "forward.dtype"), Status.PASSED,
                  "floating outputs are float32")
    result = verdict(buggy.numpy_constant, "forward.dtype")
    assert_status(result, Status.FAILED, "is float64 but the parameters are float32")


def test_probabilities_is_not_fooled_by_a_reused_tensor_id(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """An attention softmax freed before the logits exist can leave its id to them (the
    tiny_gpt false alarm of the benchmark): only the very tensor a softmax returned counts.

    The allocator's reuse is made certain rather than waited for: every object the capture
    looks up gets one and the same id, so an id-keyed capture would take the logits for
    the freed softmax output."""
    monkeypatch.setattr(forward, "id", lambda obj: 1, raising=False)
    capture = forward._LossCapture()
    target = torch.tensor([0, 1, 2, 3])
    with capture:
        attention = torch.softmax(torch.randn(4, 6), dim=-1)
        del attention  # freed: its id is free for the logits
        logits = torch.randn(4, 6) * 3
        F.cross_entropy(logits, target)
        F.cross_entropy(torch.softmax(logits, dim=-1), target)
    verdicts = [forward.looks_like_probabilities(k, capture) for k in range(2)]
    assert verdicts == [False, True]
