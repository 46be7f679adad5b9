"""The action's inputs: action.yml declares exactly the table in action/inputs.py, and
the entrypoint reads them as the runner passes them, rejecting bad values by name."""

from __future__ import annotations

from typing import Any

import pytest
from ruamel.yaml import YAML

from tests.helpers import ROOT
from torchvet.action.inputs import (
    DEFAULT_TORCH_INDEX,
    IMAGE_TORCH_INDEX,
    INPUTS,
    Inputs,
    defaults,
    get_input,
    parse_inputs,
    run_inputs,
)
from torchvet.options import Device, FailOn, RunOptions


def action_yml() -> dict[str, Any]:
    return YAML(typ="safe").load((ROOT / "action.yml").read_text(encoding="utf-8"))


def test_action_yml_declares_the_table_names_defaults_and_descriptions() -> None:
    """The one copy: an input added, renamed, re-defaulted or re-described in one place
    and not the other fails here, naming it and the value to write."""
    declared = action_yml()["inputs"]
    assert list(declared) == [spec.name for spec in INPUTS]
    for spec in INPUTS:
        entry = declared[spec.name]
        assert entry.get("required", False) is False, spec.name
        assert str(entry.get("default", "")) == spec.default, (
            f"action.yml input {spec.name}: write default: {spec.default!r}")
        assert entry.get("description") == spec.description, (
            f"action.yml input {spec.name}: write the description of action/inputs.py:\n"
            f"{spec.description}")


def test_the_declared_defaults_parse_to_the_default_inputs() -> None:
    passed = {f"INPUT_{name.upper()}": value for name, value in defaults().items()}
    assert parse_inputs(passed) == (Inputs(), [])
    assert parse_inputs({}) == (Inputs(), [])  # a bare `docker run`: the same


def test_an_empty_torch_index_is_the_one_the_images_torch_came_from() -> None:
    """The Dockerfile bakes its TORCH_INDEX_URL in; the published image's is the CPU
    index, so a workflow that sets nothing gets the CPU wheels."""
    assert defaults()["torch-index-url"] == ""
    assert parse_inputs({})[0].torch_index_url == DEFAULT_TORCH_INDEX
    image = {IMAGE_TORCH_INDEX: "https://download.pytorch.org/whl/cu121"}
    assert parse_inputs({**image, "INPUT_TORCH-INDEX-URL": ""})[0].torch_index_url == (
        "https://download.pytorch.org/whl/cu121")
    given = {**image, "INPUT_TORCH-INDEX-URL": "https://pypi.org/simple"}
    assert parse_inputs(given)[0].torch_index_url == "https://pypi.org/simple"
    dockerfile = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    assert f"ARG TORCH_INDEX_URL={DEFAULT_TORCH_INDEX}" in dockerfile
    assert f"{IMAGE_TORCH_INDEX}=${{TORCH_INDEX_URL}}" in dockerfile


def test_inputs_are_read_in_both_spellings_trimmed_with_defaults() -> None:
    assert get_input({"INPUT_TORCH-VERSION": " 2.4.1 \n"}, "torch-version") == "2.4.1"
    assert get_input({"INPUT_TORCH_VERSION": "2.4"}, "torch-version") == "2.4"
    # the runner passes every declared input; an empty hyphenated one defers to the other
    assert get_input({"INPUT_TORCH-VERSION": "", "INPUT_TORCH_VERSION": "2.3"},
                     "torch-version") == "2.3"
    assert get_input({"INPUT_TORCH-VERSION": "2.5", "INPUT_TORCH_VERSION": "2.3"},
                     "torch-version") == "2.5"
    assert get_input({}, "junit-file") == "torchvet-junit.xml"
    assert get_input({"INPUT_FAIL-ON": "   "}, "fail-on") == ""


def test_all_inputs_parse() -> None:
    env = {
        "INPUT_PATH": "sub/project", "INPUT_INSTALL": "-e '.[test]' --no-deps",
        "INPUT_TORCH-VERSION": "2.4", "INPUT_TORCH-INDEX-URL": "https://example.org/whl",
        "INPUT_MODELS": "resnet*\nvit_*", "INPUT_EXCLUDE": "big, huge", "INPUT_CHECKS":
        "forward,training\n-data.workers", "INPUT_DEVICE": "auto", "INPUT_FAIL-ON": "warning",
        "INPUT_JUNIT-FILE": "reports/j.xml", "INPUT_JSON-FILE": "reports/r.json",
        "INPUT_JOBS": "4", "INPUT_TIMEOUT": "90.5", "INPUT_SEED": "7", "INPUT_SHARD": "2/3",
        "INPUT_CHANGED-SINCE": "origin/main",
        "INPUT_ANNOTATIONS": "false", "INPUT_SUMMARY": "True",
    }
    inputs, errors = parse_inputs(env)
    assert errors == []
    assert inputs == Inputs(
        path="sub/project", install=["-e", ".[test]", "--no-deps"], install_command="",
        torch_version="2.4", torch_index_url="https://example.org/whl",
        annotations=False, summary=True, run=RunOptions(
            models=("resnet*", "vit_*"), exclude=("big", "huge"),
            checks=("forward", "training", "-data.workers"), device=Device.AUTO,
            fail_on=FailOn.WARNING, junit="reports/j.xml", json_path="reports/r.json",
            jobs=4, timeout=90.5, seed=7, shard="2/3", changed_since="origin/main"))


def test_the_run_inputs_of_options_parse_back_to_them() -> None:
    asked = RunOptions(models=("a*",), checks=("forward", "-forward.finite"),
                       device=Device.CUDA, fail_on=FailOn.NEVER, jobs=3, timeout=2.5,
                       seed=0, shard="1/2", changed_since="main", json_path="r.json")
    env = {f"INPUT_{name.upper()}": value for name, value in run_inputs(asked).items()}
    assert parse_inputs(env) == (Inputs(run=asked), [])
    assert parse_inputs({f"INPUT_{name.upper()}": value for name, value
                         in run_inputs(Inputs().run).items()}) == (Inputs(), [])


def test_none_disables_install_and_reports() -> None:
    inputs, errors = parse_inputs({"INPUT_INSTALL": "none", "INPUT_JUNIT-FILE": "none"})
    assert errors == [] and inputs.install is None and inputs.run.junit is None


@pytest.mark.parametrize(("name", "value", "fragment"), [
    ("fail-on", "always", "not one of failure, warning, never"),
    ("device", "tpu", "not one of cpu, cuda, auto"),
    ("torch-version", "latest", "not a torch version"),
    ("torch-version", "2.4; rm -rf /", "not a torch version"),
    ("torch-index-url", "download.pytorch.org/whl/cpu", "not an http(s) or file URL"),
    ("jobs", "0", "not a positive integer"),
    ("jobs", "two", "not a positive integer"),
    ("timeout", "-5", "not a positive number"),
    ("timeout", "nan", "not a positive number"),
    ("seed", "-1", "not a non-negative integer"),
    ("shard", "3/2", "not i/n"),
    ("shard", "1-2", "not i/n"),
    ("changed-since", "--output=/etc/passwd", "not a git ref"),
    ("changed-since", "main; echo", "not a git ref"),
    ("annotations", "yes", "not a boolean"),
    ("summary", "on", "not a boolean"),
    ("install", "'.[test]", "check the quotes"),
])
def test_bad_input_values_are_named(name: str, value: str, fragment: str) -> None:
    _, errors = parse_inputs({f"INPUT_{name.upper()}": value})
    assert [e.name for e in errors] == [name]
    assert fragment in str(errors[0])


def test_every_bad_input_is_reported_at_once() -> None:
    _, errors = parse_inputs({"INPUT_FAIL-ON": "x", "INPUT_JOBS": "x", "INPUT_SEED": "x"})
    assert sorted(e.name for e in errors) == ["fail-on", "jobs", "seed"]
    _, errors = parse_inputs({"INPUT_INSTALL": "-e .[dev]",
                              "INPUT_INSTALL-COMMAND": "make install"})
    assert [e.name for e in errors] == ["install-command"]


@pytest.mark.parametrize("version", ["2.0.1", "1.13"])
def test_a_torch_older_than_the_supported_range_is_a_usage_error_naming_it(version: str
                                                                            ) -> None:
    inputs, errors = parse_inputs({"INPUT_TORCH-VERSION": version})
    assert inputs.torch_version == ""
    assert [str(e) for e in errors] == [
        f"torch {version} is older than torchvet supports (torch >= 2.1); use torch 2.1 "
        "or newer"]


@pytest.mark.parametrize("version", ["2.1", "2.1.2", "2.14.1"])
def test_a_supported_torch_version_is_taken(version: str) -> None:
    assert parse_inputs({"INPUT_TORCH-VERSION": version})[0].torch_version == version
