"""state.roundtrip: a state_dict round trip into a fresh instance reproduces the outputs;
every way of keeping state outside state_dict is caught and named, healthy models pass."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

from tests.fixtures import models_portability as models
from tests.fixtures import models_real as real
from tests.helpers import assert_status, line_in, verdict
from torchvet.results import Status

FIXTURE_FILE = Path(models.__file__)
CHECK = "state.roundtrip"


def line_of(marker: str) -> int:
    return line_in(FIXTURE_FILE, marker)


@pytest.mark.parametrize("factory", models.HEALTHY, ids=lambda f: f.__name__)
def test_healthy_models_round_trip(factory: Any) -> None:
    result = verdict(factory, CHECK)
    assert_status(result, Status.PASSED, "restore the outputs in a fresh instance")


@pytest.mark.parametrize("name", sorted(real.REAL_MODELS))
def test_real_architectures_round_trip(name: str) -> None:
    assert_status(verdict(real.REAL_MODELS[name], CHECK), Status.PASSED)


BUGS = {
    # factory: (fragments of the message, marker of the reported line)
    "plain_list": (("self.layers is a plain list of 3 modules", "use nn.ModuleList",
                    "out differs by"), "# BUG: plain-list"),
    "random_tensor_attribute": (("self.projection is a plain tensor attribute",
                                 "register_buffer('projection'"), "# BUG: random-attribute"),
    "random_non_persistent": (("buffer noise is registered with persistent=False",
                               "make it persistent"), "# BUG: non-persistent"),
    "unloadable_extra_state": (("state_dict['_extra_state']", "Config",
                                "torch.load(weights_only=True) refuses",
                                "add_safe_globals"), "# BUG: extra-state"),
    "module_created_in_forward": (("unexpected head.weight, head.bias",
                                   "build every layer in __init__"),
                                  "# BUG: created-in-forward"),
}


@pytest.mark.parametrize("name", sorted(BUGS))
def test_state_bugs_are_caught_and_located(name: str) -> None:
    fragments, marker = BUGS[name]
    result = verdict(getattr(models, name), CHECK)
    assert_status(result, Status.FAILED, *fragments)
    assert result.file == FIXTURE_FILE.name
    assert result.line == line_of(marker)


class NestedPlainDict(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.encoder = Encoder()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.encoder(x)


class Encoder(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.heads = {"a": nn.Linear(4, 4), "b": nn.Linear(4, 4)}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.heads["a"](x) + self.heads["b"](x)


def nested_plain_dict() -> dict[str, Any]:
    return {"model": NestedPlainDict(), "inputs": torch.randn(2, 4)}


def test_nested_plain_dict_is_named_with_its_path_and_fix() -> None:
    result = verdict(nested_plain_dict, CHECK)
    assert_status(result, Status.FAILED, "self.encoder.heads is a plain dict of 2 modules",
                  "use nn.ModuleDict")
    assert result.line is not None
    source = Path(__file__).read_text().splitlines()[result.line - 1]
    assert "self.heads = {" in source


class ResizedBySeed(nn.Module):
    """Its width depends on the global RNG: a fresh instance has other shapes."""

    def __init__(self) -> None:
        super().__init__()
        width = int(torch.randint(3, 64, ()).item())
        self.fc = nn.Linear(4, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x)


def test_size_mismatch_names_the_parameter() -> None:
    result = verdict(lambda: {"model": ResizedBySeed(), "inputs": torch.randn(2, 4)}, CHECK)
    assert_status(result, Status.FAILED, "size mismatch for fc.weight", "sizes fixed")


class RandomScale(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(4, 4)
        self.scale = float(torch.rand(()))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x) * self.scale


def test_plain_python_attribute_that_differs_is_named() -> None:
    result = verdict(lambda: {"model": RandomScale(), "inputs": torch.randn(2, 4)}, CHECK)
    assert_status(result, Status.FAILED, "self.scale = ", "plain Python attribute")


def test_eval_randomness_is_not_blamed_on_the_state_dict() -> None:
    """Noise at eval time is seeded identically for both instances: no false alarm."""

    class Noisy(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc = nn.Linear(4, 4)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.fc(x) + torch.randn_like(x)

    assert_status(verdict(lambda: {"model": Noisy(), "inputs": torch.randn(2, 4)}, CHECK),
                  Status.PASSED)


def test_second_factory_call_failing_is_an_error_not_a_crash() -> None:
    calls = []

    def once() -> dict[str, Any]:
        calls.append(1)
        if len(calls) > 1:
            raise RuntimeError("global registry already holds this model")
        return {"model": nn.Linear(4, 2), "inputs": torch.randn(2, 4)}

    result = verdict(once, CHECK)
    assert_status(result, Status.ERROR, "when called a second time",
                  "global registry already holds this model")


def test_factory_returning_one_shared_instance_skips_with_reason() -> None:
    shared = models.PlainListMLP()
    result = verdict(lambda: {"model": shared, "inputs": torch.randn(2, 8)}, CHECK)
    assert_status(result, Status.SKIPPED, "same model instance on every call")


def test_declared_skip_and_xfail_apply() -> None:
    def skipped() -> dict[str, Any]:
        return {**models.plain_list(), "skip": {"state.*": "checkpoints unused"}}

    def xfailed() -> dict[str, Any]:
        return {**models.plain_list(), "xfail": {CHECK: "known, fixing in #12"}}

    assert_status(verdict(skipped, CHECK), Status.SKIPPED, "checkpoints unused")
    assert_status(verdict(xfailed, CHECK), Status.XFAILED, "known, fixing in #12")
