"""Workflow commands, the runner's side channel: one home for how torchvet writes them,
reads them back, and keeps user code from issuing or reaching them.

- writing: ``::error file=..,line=..,title=..::message`` with the toolkit's escaping (in
  the data ``%`` -> ``%25``, CR -> ``%0D``, LF -> ``%0A``; in property values also
  ``:`` -> ``%3A`` and ``,`` -> ``%2C``), so a message can never end a command early;
- ``::stop-commands::<random token>`` around anything derived from user code, or, for
  text on its own (an error on stderr), :func:`neutralize`;
- parsing, as the runner does, for ``torchvet docker``'s log;
- the variables user code must never see: the tokens and the step's file-command paths.
"""

from __future__ import annotations

import os
import re
import secrets
from collections.abc import MutableMapping
from typing import TextIO

# The step's file commands: whoever can write these sets outputs, env, PATH, the summary.
FILE_COMMAND_VARIABLES = ("GITHUB_OUTPUT", "GITHUB_STEP_SUMMARY", "GITHUB_ENV",
                          "GITHUB_PATH", "GITHUB_STATE")
TOKENS = ("GITHUB_TOKEN", "GH_TOKEN", "GH_ENTERPRISE_TOKEN", "GITHUB_ENTERPRISE_TOKEN")
# set by the action for `torchvet run`: its output is relayed inside the action's own
# stop-commands block, so it needs none of its own
RELAYED_ENV = "TORCHVET_RELAYED"

_COMMAND = re.compile(r"^::(?P<name>[^\s:]+)(?: (?P<props>[^:]*))?::(?P<data>.*)$")
_COLONS = re.compile(r":(?=:)")
ZERO_WIDTH_SPACE = "\u200b"


# --------------------------------------------------------------------------- secrets


def is_token(name: str) -> bool:
    """``GITHUB_TOKEN``, ``GH_TOKEN`` and the runner's ``ACTIONS_*TOKEN*`` variables
    (runtime and OIDC request tokens)."""
    upper = name.upper()
    return upper in TOKENS or (upper.startswith("ACTIONS_") and "TOKEN" in upper)


def is_withheld(name: str) -> bool:
    """A variable user code must not see: a token, or a file-command path (whoever can
    write those files sets the step's outputs, environment and summary)."""
    return is_token(name) or name.upper() in FILE_COMMAND_VARIABLES


def withhold_from_user_code(environ: MutableMapping[str, str] | None = None) -> dict[str, str]:
    """Remove the tokens and the file-command paths from ``environ`` (default:
    ``os.environ``, which worker processes inherit) and return it as it was, for the
    reporter. Call it before any worker process starts."""
    environ = os.environ if environ is None else environ
    saved = dict(environ)
    for name in list(environ):
        if is_withheld(name):
            del environ[name]
    return saved


# --------------------------------------------------------------------------- writing


def escape_data(text: str) -> str:
    """Escape the message part of a workflow command (after the second ``::``)."""
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def escape_property(text: str) -> str:
    """Escape a property value of a workflow command (``file=``, ``title=``)."""
    return escape_data(text).replace(":", "%3A").replace(",", "%2C")


def command(name: str, message: str = "", **properties: str | int | None) -> str:
    """One workflow command line (without the newline); ``None`` properties are left out."""
    props = ",".join(
        f"{key}={escape_property(str(value))}"
        for key, value in properties.items()
        if value is not None and str(value) != ""
    )
    return f"::{name}{' ' + props if props else ''}::{escape_data(message)}"


def neutralize(text: str) -> str:
    """``text`` the runner cannot read as a workflow command, wherever its lines start:
    a zero-width space breaks every ``::`` (a command after leading whitespace) and every
    ``##[`` (the legacy form, honoured anywhere in a line)."""
    return _COLONS.sub(":" + ZERO_WIDTH_SPACE, text).replace("##[", "#" + ZERO_WIDTH_SPACE + "#[")


def stop_commands(out: TextIO) -> str:
    """Disable workflow commands while anything derived from user code is printed; the
    returned line re-enables them (https://docs.github.com/actions: stop-commands)."""
    token = secrets.token_hex(16)
    out.write(f"::stop-commands::{token}\n")
    out.flush()
    return f"::{token}::\n"


# --------------------------------------------------------------------------- reading


def unescape_data(text: str) -> str:
    return text.replace("%0D", "\r").replace("%0A", "\n").replace("%25", "%")


def unescape_property(text: str) -> str:
    return (text.replace("%0D", "\r").replace("%0A", "\n").replace("%3A", ":")
            .replace("%2C", ",").replace("%25", "%"))


def parse_command(line: str) -> tuple[str, dict[str, str], str] | None:
    """``(name, properties, data)`` of a workflow command line, else None."""
    found = _COMMAND.match(line)
    if not found:
        return None
    props: dict[str, str] = {}
    for pair in (found.group("props") or "").split(","):
        key, sep, value = pair.partition("=")
        if sep and key.strip():
            props[key.strip()] = unescape_property(value)
    return found.group("name").lower(), props, unescape_data(found.group("data"))
