"""The action's inputs: the one table of their names, defaults, descriptions and
validators.

The runner passes every input declared in ``action.yml``, defaults included, as
``INPUT_<NAME>`` (hyphens kept); the entrypoint reads them back with :func:`parse_inputs`
and ``torchvet docker`` builds each container's inputs from :func:`defaults` and
:func:`run_inputs`. The run's own inputs fill the shared
:class:`~torchvet.options.RunOptions` (each row names its field); the rest are the
action's (install, torch, reports on the job page).

``action.yml`` is hand-written and *tested against* this table
(``tests/action/test_inputs.py`` fails naming each input whose name, default or
description differs), not generated from it: it is the file GitHub and the Marketplace
read from the repository at a tag, so it must be committed anyway; it also holds the
outputs, branding and YAML folding a reviewer reads; and a generator would need a YAML
emitter torchvet does not otherwise depend on. The test gives the same guarantee (one
source of truth, no drift) with nothing to remember to run.

``torch-index-url`` defaults to empty, meaning the index the image's own torch came from
(``TORCHVET_TORCH_INDEX_URL``, baked in by the Dockerfile's ``TORCH_INDEX_URL``: the CPU
wheels for the published image), so a CUDA image built with ``torchvet docker --build
--torch-index-url ...`` keeps installing CUDA builds.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ..errors import UsageError
from ..options import Device, FailOn, RunOptions
from ..torch_range import unsupported

DEFAULT_TORCH_INDEX = "https://download.pytorch.org/whl/cpu"
IMAGE_TORCH_INDEX = "TORCHVET_TORCH_INDEX_URL"  # set by the Dockerfile
JUNIT_DEFAULT = "torchvet-junit.xml"
# core.getBooleanInput's YAML 1.2 core schema spellings
TRUE = ("true", "True", "TRUE")
FALSE = ("false", "False", "FALSE")
NONE = ("none", "None", "NONE", *FALSE)

TORCH_VERSION = re.compile(
    r"^[0-9]+(\.[0-9]+){0,3}((a|b|rc)[0-9]+)?(\.post[0-9]+)?(\.dev[0-9]+)?(\+[A-Za-z0-9.]+)?$")
INDEX_URL = re.compile(r"^(https?|file)://\S+$")
_GIT_REF = re.compile(r"^[A-Za-z0-9._/@^~{}-]+$")
_SHARD = re.compile(r"^([0-9]+)/([0-9]+)$")


class InputError(UsageError):
    """A bad input value: ``name`` and a message that says how to fix it."""

    def __init__(self, name: str, message: str) -> None:
        super().__init__(message)
        self.name = name


# --------------------------------------------------------------------------- validators
# Each turns the input's text into its value, or raises ValueError saying what to write.


def text(value: str) -> str:
    return value


def split(value: str) -> list[str]:
    """The items of a comma- or newline-separated list."""
    return [part.strip() for part in re.split(r"[,\n]", value) if part.strip()]


def patterns(value: str) -> tuple[str, ...]:
    """A multi-line or comma-separated list of patterns."""
    return tuple(split(value))


def pip_arguments(value: str) -> list[str] | None:
    if value in NONE:
        return None
    try:
        return shlex.split(value)
    except ValueError as exc:
        raise ValueError(f"cannot split '{value}' into pip arguments ({exc}); check the "
                         "quotes") from None


def torch_version(value: str) -> str:
    if value and not TORCH_VERSION.match(value):
        raise ValueError(f"'{value}' is not a torch version; use e.g. 2.4.1 or 2.4 (empty: "
                         "the image's torch)")
    why = unsupported(value) if value else None
    if why is not None:
        raise ValueError(why)
    return value


def index_url(value: str) -> str:
    if not INDEX_URL.match(value):
        raise ValueError(f"'{value}' is not an http(s) or file URL; the default is "
                         f"{DEFAULT_TORCH_INDEX}")
    return value


def device(value: str) -> Device:
    if value not in Device.values():
        raise ValueError(f"'{value}' is not one of {', '.join(Device.values())}")
    return Device(value)


def fail_on(value: str) -> FailOn | None:
    if value and value not in FailOn.values():
        raise ValueError(f"'{value}' is not one of {', '.join(FailOn.values())}")
    return FailOn(value) if value else None


def report_file(value: str) -> str | None:
    return None if not value or value in NONE else value


def positive_int(value: str) -> int:
    if not value:
        return 0
    if not value.isdigit() or int(value) < 1:
        raise ValueError(f"'{value}' is not a positive integer (units at once)")
    return int(value)


def seed(value: str) -> int | None:
    if not value:
        return None
    if not value.isdigit():
        raise ValueError(f"'{value}' is not a non-negative integer")
    return int(value)


def seconds(value: str) -> float | None:
    if not value:
        return None
    try:
        number = float(value)
    except ValueError:
        number = -1.0
    if not number > 0 or number != number or number == float("inf"):
        raise ValueError(f"'{value}' is not a positive number of seconds")
    return number


def shard(value: str) -> str | None:
    if not value:
        return None
    match = _SHARD.match(value)
    if not match or not 1 <= int(match.group(1)) <= int(match.group(2)):
        raise ValueError(f"'{value}' is not i/n with 1 <= i <= n (e.g. 2/4)")
    return value


def git_ref(value: str) -> str | None:
    if not value:
        return None
    if value.startswith("-") or not _GIT_REF.match(value):
        raise ValueError(f"'{value}' is not a git ref or commit "
                         "(e.g. ${{ github.event.pull_request.base.sha }})")
    return value


def baseline(value: str) -> str:
    """``snapshot`` (the committed snapshots), or a git ref to compare with."""
    if not value or value == "snapshot":
        return "snapshot"
    ref = git_ref(value)
    return ref or "snapshot"


def boolean(value: str) -> bool:
    if value in TRUE:
        return True
    if value in FALSE:
        return False
    raise ValueError(f"'{value}' is not a boolean; use true or false")


# --------------------------------------------------------------------------- the table


@dataclass(frozen=True)
class Input:
    name: str
    default: str
    description: str
    parse: Callable[[str], Any]
    run: str = ""  # the RunOptions field it fills; empty: an input of the action's own

    @property
    def field(self) -> str:
        """The attribute that holds the parsed value: of :class:`Inputs`, or of its
        :class:`~torchvet.options.RunOptions` for a run input."""
        return self.run or self.name.replace("-", "_")


INPUTS: tuple[Input, ...] = (
    Input("path", ".", "Directory of the project to check (holding its pyproject.toml), "
          "relative to the workspace.", text),
    Input("install", ".", "Arguments for `pip install`, run in `path` with the image's torch "
          "pinned, e.g. `.[test]` or `-e . -r requirements-ci.txt`. `none` installs nothing.",
          pip_arguments),
    Input("install-command", "", "A shell command run in `path` instead of `pip install` "
          "(PIP_CONSTRAINT pins torch for the pip calls it makes), e.g. `pip install poetry "
          "&& poetry install`.", text),
    Input("torch-version", "", "torch to check with, e.g. `2.4.1` or `2.4` (the newest "
          "2.4.x); installed from `torch-index-url` first. Empty: the image's torch.",
          torch_version),
    Input("torch-index-url", "", "Package index torch is installed from. Empty: the one the "
          f"image's torch came from, {DEFAULT_TORCH_INDEX} (the CPU wheels keep CUDA out). "
          "Also an extra index for the project's install, so torchvision & co. match.",
          index_url),
    Input("models", "", "Only the factories whose name matches these globs (comma- or "
          "newline-separated).", patterns, run="models"),
    Input("exclude", "", "Leave out the factories whose name matches these globs.", patterns,
          run="exclude"),
    Input("checks", "", "Checks to run: areas (`forward`), ids (`training.update`) or globs "
          "(`export.*`); prefix with `-` to exclude. Empty: every default check.", patterns,
          run="checks"),
    Input("device", "cpu", "`cpu`, `cuda` or `auto`. A container action has no GPU: see the "
          "docs for GPU jobs.", device, run="device"),
    Input("fail-on", "", "What fails the step: `failure` (a check failed or errored), "
          "`warning` (also warnings) or `never`. Empty: the project's [tool.torchvet] "
          "fail_on, else `failure`.", fail_on, run="fail_on"),
    Input("junit-file", JUNIT_DEFAULT, "JUnit XML report written in the workspace "
          "(for test-report actions). `none` writes none.", report_file, run="junit"),
    Input("json-file", "", "Full JSON report written in the workspace (input of `torchvet "
          "merge`). Empty writes none.", report_file, run="json_path"),
    Input("jobs", "", "Units checked at once. Empty: the runner's cores.", positive_int,
          run="jobs"),
    Input("timeout", "", "Per-unit time limit in seconds. Empty: 300.", seconds,
          run="timeout"),
    Input("seed", "", "Seed of every check; a verdict reproduces with its seed. Empty: the "
          "project's, else 0.", seed, run="seed"),
    Input("shard", "", "Run only the i-th of n deterministic slices of the units, e.g. `2/4` "
          "(matrix jobs).", shard, run="shard"),
    Input("changed-since", "", "Check only the units whose factory module, or a project "
          "module it imports, changed since this git ref, e.g. `${{ "
          "github.event.pull_request.base.sha }}`; a change to pyproject.toml or an import "
          "torchvet cannot follow selects everything. Needs the ref in the checkout "
          "(actions/checkout with `fetch-depth: 0`). Empty: every unit.", git_ref,
          run="changed_since"),
    Input("baseline", "snapshot", "What the regression checks compare with: `snapshot` (the "
          "files committed under .torchvet/snapshots) or a git ref whose snapshots are taken "
          "in the container, e.g. `${{ github.event.pull_request.base.sha }}` (needs "
          "`fetch-depth: 0`); the job summary then shows the Model changes.", baseline),
    Input("annotations", "true", "Annotate the culprit lines (at most 10 per level; the "
          "summary lists all).", boolean),
    Input("summary", "true", "Write the job summary.", boolean),
)


def defaults() -> dict[str, str]:
    """Every input and its default, as the runner passes them when a workflow sets none."""
    return {spec.name: spec.default for spec in INPUTS}


def run_inputs(options: RunOptions) -> dict[str, str]:
    """The run inputs that ask for ``options``, as the runner would pass them: what
    :func:`parse_inputs` reads back into the same record."""
    return {
        "models": ",".join(options.models),
        "exclude": ",".join(options.exclude),
        "checks": ",".join(options.checks),
        "device": str(options.device),
        "fail-on": str(options.fail_on or ""),
        "junit-file": options.junit or NONE[0],
        "json-file": options.json_path or "",
        "jobs": str(options.jobs) if options.jobs else "",
        "timeout": f"{options.timeout:g}" if options.timeout is not None else "",
        "seed": str(options.seed) if options.seed is not None else "",
        "shard": options.shard or "",
        "changed-since": options.changed_since or "",
    }


@dataclass
class Inputs:
    """The parsed inputs (what :func:`parse_inputs` makes of :data:`INPUTS`' defaults):
    the action's own, and the run's as its :class:`~torchvet.options.RunOptions`."""

    path: str = "."
    install: list[str] | None = field(default_factory=lambda: ["."])  # None: skip
    install_command: str = ""
    torch_version: str = ""
    torch_index_url: str = DEFAULT_TORCH_INDEX
    baseline: str = "snapshot"
    annotations: bool = True
    summary: bool = True
    run: RunOptions = field(default_factory=lambda: RunOptions(junit=JUNIT_DEFAULT))


# --------------------------------------------------------------------------- reading


def get_input(env: Mapping[str, str], name: str) -> str:
    """An input as the runner passes it: ``INPUT_<NAME>`` with the hyphens kept
    (``INPUT_TORCH-VERSION``), or with underscores (``INPUT_TORCH_VERSION``), trimmed;
    the first non-empty spelling wins, else the default."""
    key = "INPUT_" + name.replace(" ", "_").upper()
    for variable in (key, key.replace("-", "_")):
        value = env.get(variable, "").strip()
        if value:
            return value
    return next((spec.default for spec in INPUTS if spec.name == name), "")


def parse_inputs(env: Mapping[str, str]) -> tuple[Inputs, list[InputError]]:
    """All inputs, and every bad value found (not only the first)."""
    values: dict[str, Any] = {}
    run: dict[str, Any] = {}
    errors: list[InputError] = []
    for spec in INPUTS:
        value = get_input(env, spec.name)
        if spec.name == "torch-index-url" and not value:
            value = env.get(IMAGE_TORCH_INDEX, "") or DEFAULT_TORCH_INDEX
        try:
            (run if spec.run else values)[spec.field] = spec.parse(value)
        except ValueError as exc:
            errors.append(InputError(spec.name, str(exc)))
    inputs = Inputs(**values, run=RunOptions(**run))
    if inputs.install_command and "install" in values and inputs.install not in (None, ["."]):
        errors.append(InputError("install-command", "set either 'install' (pip arguments) "
                                                    "or 'install-command', not both"))
    return inputs, errors
