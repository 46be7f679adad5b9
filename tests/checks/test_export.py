"""export.* (opt-in): torch.export, TorchScript and torch.compile verdicts, their
explanations and lines, graph-break counting, and the budget that stops a compile
that never ends."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

from tests.fixtures import models_portability as models
from tests.fixtures.models_blocking import block_until_the_alarm
from tests.helpers import assert_status, line_in, verdict, vet
from torchvet.checks.catalogue import CATALOGUE, select
from torchvet.results import Status

FIXTURE_FILE = Path(models.__file__)
EXPORT, SCRIPT, COMPILE = "export.torch_export", "export.torchscript", "export.compile"
EXPORTABLE = [models.bn_cnn, models.buffers, models.dict_output, models.tuple_output,
              models.padding_embedding, models.transformer, models.zero_dim_constant]


def line_of(marker: str) -> int:
    return line_in(FIXTURE_FILE, marker)


def test_export_checks_are_opt_in() -> None:
    ids = {m.id for m in select("model")}
    assert not ids & {EXPORT, SCRIPT, COMPILE}
    assert {m.id for m in select("model", ["export"])} == {EXPORT, SCRIPT, COMPILE}
    assert all(not CATALOGUE[i].default for i in (EXPORT, SCRIPT, COMPILE))


@pytest.mark.parametrize("factory", EXPORTABLE, ids=lambda f: f.__name__)
def test_exportable_models_pass_every_export_check(factory: Any) -> None:
    results = vet(factory, ["export"])
    assert_status(results[EXPORT], Status.PASSED, "matches eager")
    assert_status(results[SCRIPT], Status.PASSED, "matches eager")
    assert_status(results[COMPILE], Status.PASSED, "one graph", "matches eager")
    for check_id in (EXPORT, SCRIPT, COMPILE):
        assert results[check_id].duration > 0  # measured
        assert " s" in results[check_id].message  # and reported


def test_data_dependent_control_flow_fails_export_with_line_and_fix() -> None:
    result = verdict(models.data_dependent_branch, EXPORT)
    assert_status(result, Status.FAILED, "torch.export cannot capture the model",
                  "data-dependent control flow", "`if h.sum() > 0:", "torch.cond")
    assert (result.file, result.line) == (FIXTURE_FILE.name, line_of("# BUG: data-dependent"))


def test_data_dependent_control_flow_is_a_graph_break_warning_for_compile() -> None:
    result = verdict(models.data_dependent_branch, COMPILE)
    assert_status(result, Status.WARNED, "2 graphs (1 graph break)",
                  "an `if`/`while` on a tensor's value", "outputs match eager")
    assert (result.file, result.line) == (FIXTURE_FILE.name, line_of("# BUG: data-dependent"))


def test_unscriptable_model_fails_torchscript_explaining_why_and_the_fallback() -> None:
    result = verdict(models.unscriptable, SCRIPT)
    assert_status(result, Status.FAILED, "torch.jit.script cannot compile the model",
                  "has no attribute 'act'", "torch.jit.trace works on these inputs")
    assert (result.file, result.line) == (FIXTURE_FILE.name, line_of("# BUG: unscriptable"))
    # the same model exports and compiles: scripting alone is the problem
    results = vet(models.unscriptable, [EXPORT, COMPILE])
    assert_status(results[EXPORT], Status.PASSED)
    assert_status(results[COMPILE], Status.PASSED)


def test_unregistered_dataclass_output_warns_with_the_registration_fix() -> None:
    results = vet(models.dataclass_output, [EXPORT, COMPILE])
    assert_status(results[EXPORT], Status.WARNED,
                  "torch.export.register_dataclass(Prediction)", "matches eager")
    assert_status(results[COMPILE], Status.PASSED)


def test_torch_internal_probe_is_reported_at_the_users_call() -> None:
    result = verdict(models.transformer_mask_probe, EXPORT)
    assert_status(result, Status.FAILED, "data-dependent control flow",
                  "self.encoder(h, mask=causal)")


def test_model_that_dynamo_does_not_trace_warns() -> None:
    result = verdict(models.recurrent, COMPILE)
    assert_status(result, Status.WARNED, "captured no graph", "allow_rnn")


def test_export_that_bakes_a_python_value_differs_from_eager() -> None:
    class CallCounter(nn.Module):
        """Python state changes every call: the export freezes the first value."""

        def __init__(self) -> None:
            super().__init__()
            self.fc = nn.Linear(4, 4)
            self.calls = 0

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            self.calls += 1
            return self.fc(x) * self.calls

    result = verdict(lambda: {"model": CallCounter(), "inputs": torch.randn(2, 4)}, EXPORT)
    assert_status(result, Status.FAILED, "exported program's out differs by",
                  "specialised a Python value")


# --------------------------------------------------------------------------- budget


def test_a_check_past_its_budget_skips_with_a_reason(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(CATALOGUE, COMPILE, dataclasses.replace(CATALOGUE[COMPILE],
                                                                budget=0.01))

    def never_ending_explain(model: Any) -> Any:
        def run(*args: Any, **kwargs: Any) -> Any:
            block_until_the_alarm()

        return run

    monkeypatch.setattr("torch._dynamo.explain", never_ending_explain)  # imported on use: slow
    result = verdict(models.bn_cnn, COMPILE)
    assert_status(result, Status.SKIPPED, "did not finish within its 0.01 s budget",
                  "export.compile")
