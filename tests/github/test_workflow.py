"""Workflow commands: written with the toolkit's escaping (checked against the runner
model in helpers.workflow), read back as the runner reads them, stop-commands, and the
variables user code never sees."""

from __future__ import annotations

import io

import pytest

from tests.helpers.workflow import NASTY, replay_log
from torchvet.github import workflow


def test_escape_data_and_property_follow_the_toolkit() -> None:
    assert workflow.escape_data("50%\r\nnext") == "50%25%0D%0Anext"
    assert workflow.escape_data("a:b,c") == "a:b,c"
    assert workflow.escape_property("a:b,c%\n") == "a%3Ab%2Cc%25%0A"
    # `%` goes first, so an escape-looking literal survives the round trip
    assert workflow.escape_data("%0A") == "%250A"


@pytest.mark.parametrize("text", NASTY)
def test_commands_round_trip_through_the_runner(text: str) -> None:
    line = workflow.command("error", text, file=f"src/{text or 'x'}.py", line=3,
                            title=f"torchvet: {text}")
    assert "\n" not in line and "\r" not in line
    [(name, props, data)] = replay_log(line + "\n")
    assert name == "error"
    assert data == text
    # (the runner trims the property list, so a trailing blank of the last value goes)
    assert props == {"file": f"src/{text or 'x'}.py", "line": "3",
                     "title": f"torchvet: {text}".rstrip()}


@pytest.mark.parametrize("text", NASTY)
def test_our_parser_reads_back_what_we_write(text: str) -> None:
    """``torchvet docker`` reads the container's log with parse_command."""
    line = workflow.command("warning", text, file="a,b:c.py", line=7, title=f"t: {text}")
    assert workflow.parse_command(line) == (
        "warning", {"file": "a,b:c.py", "line": "7", "title": f"t: {text}"}, text)
    assert workflow.parse_command("plain text ::error::x") is None


def test_command_leaves_out_empty_properties() -> None:
    assert workflow.command("warning", "m", file=None, line=None, title="") == "::warning::m"
    assert (workflow.command("group", "Install: pip install .[x]")
            == "::group::Install: pip install .[x]")


def test_stop_commands_make_everything_until_the_token_inert() -> None:
    out = io.StringIO()
    resume = workflow.stop_commands(out)
    out.write("::error::from user code\n::set-output name=x::y\n")
    out.write(resume)
    out.write(workflow.command("notice", "after") + "\n")
    assert [(name, data) for name, _, data in replay_log(out.getvalue())] == [
        ("notice", "after")]
    assert workflow.stop_commands(io.StringIO()) != resume  # a fresh token each time


def test_withhold_removes_tokens_and_file_command_paths() -> None:
    environ = {"GITHUB_TOKEN": "t", "ACTIONS_RUNTIME_TOKEN": "r", "GITHUB_OUTPUT": "/o",
               "GITHUB_STEP_SUMMARY": "/s", "GITHUB_ENV": "/e", "GITHUB_WORKSPACE": "/w",
               "HF_TOKEN": "h", "actions_id_token_request_token": "o"}
    before = dict(environ)
    assert workflow.withhold_from_user_code(environ) == before
    assert environ == {"GITHUB_WORKSPACE": "/w", "HF_TOKEN": "h"}
    assert [workflow.is_token(k) for k in ("GH_TOKEN", "ACTIONS_CACHE_URL", "HF_TOKEN")] == [
        True, False, False]


@pytest.mark.parametrize("text", [
    "::error::x", "  ::error::indented", "\t::warning file=a.py::x", "a\n::set-output name=a::b",
    "a\r::add-mask::x", "legacy ##[error]anywhere", "::::error::double",
    "tail ###[warning]x", "name\n  ::stop-commands::tok",
])
def test_neutralized_text_issues_no_command_however_it_is_split(text: str) -> None:
    safe = workflow.neutralize(text)
    assert replay_log(safe) == []
    assert safe.replace(workflow.ZERO_WIDTH_SPACE, "") == text  # only made inert
