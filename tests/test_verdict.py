"""verdict: the outcome vocabulary every side speaks, and how a declared pattern selects
a check; importable without torch or any other module of the package above it."""

from __future__ import annotations

import subprocess
import sys

from torchvet.results import Status
from torchvet.verdict import DependencyFailed, Skip, failed, first_match, matches, passed, warned


def test_the_helpers_state_a_status_and_keep_where_it_points() -> None:
    assert passed().status is Status.PASSED and passed().where is None
    assert failed("wrong", where=("m.py", 3)).where == ("m.py", 3)
    assert warned("odd", data={"curve": [1.0]}).data == {"curve": [1.0]}


def test_a_failed_dependency_is_a_skip() -> None:
    assert issubclass(DependencyFailed, Skip)


def test_a_pattern_selects_by_area_id_or_glob() -> None:
    assert matches("forward.runs", "forward")
    assert matches("forward.runs", "forward.runs")
    assert matches("export.compile", "export.*")
    assert not matches("forward.runs", "forward.run")


def test_the_first_selecting_pattern_wins() -> None:
    declared = {"export.*": 7.0, "export.compile": 9.0}
    assert first_match("export.compile", declared) == ("export.*", 7.0)
    assert first_match("forward.runs", declared) is None


def test_importing_it_imports_neither_torch_nor_the_worker_side() -> None:
    code = ("import sys, torchvet.verdict; "
            "assert not {'torch', 'torchvet.unit', 'torchvet.checks'} & set(sys.modules)")
    subprocess.run([sys.executable, "-c", code], check=True)
