"""cli.main: the one place user errors, interrupts and bugs become exit codes."""

from __future__ import annotations

import click
import pytest

from torchvet import cli
from torchvet.errors import ExitCode, UsageError


@pytest.fixture
def raising(monkeypatch: pytest.MonkeyPatch) -> list[BaseException]:
    """`torchvet checks` raises whatever the test puts in the list."""
    planned: list[BaseException] = []

    def boom(as_json: bool) -> None:
        raise planned[0]

    monkeypatch.setattr(cli.checks_command, "callback", boom)
    return planned


def test_a_usage_error_raised_deep_exits_2_with_its_message(
        raising: list[BaseException], capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GITHUB_ACTIONS", raising=False)
    raising.append(UsageError("--shard 3/2: expected 1 <= i <= n"))
    assert cli.main(["checks"]) == ExitCode.USAGE == 2
    captured = capsys.readouterr()
    assert captured.err == "torchvet: error: --shard 3/2: expected 1 <= i <= n\n"
    assert captured.out == ""


def test_in_actions_a_usage_error_is_also_an_escaped_annotation(
        raising: list[BaseException], capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    raising.append(UsageError("bad\n::error::forged"))
    assert cli.main(["checks"]) == ExitCode.USAGE
    assert capsys.readouterr().out == "::error title=torchvet::bad%0A::error::forged\n"


def test_a_bug_exits_3_with_the_traceback(raising: list[BaseException],
                                          capsys: pytest.CaptureFixture[str]) -> None:
    raising.append(RuntimeError("oops"))
    assert cli.main(["checks"]) == ExitCode.INTERNAL == 3
    err = capsys.readouterr().err
    assert "internal error (please report it" in err and "RuntimeError: oops" in err


@pytest.mark.parametrize("interrupt", [KeyboardInterrupt(), click.exceptions.Abort()])
def test_an_interrupt_exits_130(raising: list[BaseException], interrupt: BaseException,
                                capsys: pytest.CaptureFixture[str]) -> None:
    raising.append(interrupt)
    assert cli.main(["checks"]) == ExitCode.INTERRUPTED == 130
    assert capsys.readouterr().err.strip() == "interrupted"


def test_bad_options_are_click_usage_errors(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["run", "-j", "0"]) == ExitCode.USAGE
    assert "Invalid value for '-j'" in capsys.readouterr().err
