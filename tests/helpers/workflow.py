"""An independent model of how the GitHub Actions runner reads what a step writes.

``replay_log`` follows actions/runner's ActionCommand parsing of stdout (both command
forms, stop-commands, .NET's line splitting) and ``read_outputs`` its ``GITHUB_OUTPUT``
file format. Written from the runner's behaviour, not from torchvet's code, so tests of
torchvet's escaping and relaying do not check the code against itself.
"""

from __future__ import annotations

import re

# commands an Actions runner acts on (case-insensitive), besides a stop-commands token
RUNNER_COMMANDS = {
    "error", "warning", "notice", "debug", "group", "endgroup", "set-output", "set-env",
    "add-path", "add-mask", "save-state", "echo", "add-matcher", "remove-matcher",
    "stop-commands",
}

Command = tuple[str, dict[str, str], str]

# text that would break a workflow command, were it not escaped
NASTY = [
    "plain",
    "100% sure",
    "a:b,c::d",
    "line one\nline two\r\nline three\rfour",
    "%0A is not a newline and %25 is not a percent, %3A %2C either",
    "::error::injected",
    "##[set-output name=x;]y",
    "trailing %",
    "",
]


def unescape_data(text: str) -> str:
    for token, replacement in (("\r", "%0D"), ("\n", "%0A"), ("%", "%25")):
        text = text.replace(replacement, token)
    return text


def unescape_property(text: str) -> str:
    for token, replacement in (("\r", "%0D"), ("\n", "%0A"), (":", "%3A"), (",", "%2C"),
                               ("%", "%25")):
        text = text.replace(replacement, token)
    return text


def parse_command(line: str, registered: set[str]) -> Command | None:
    """(name, properties, data) when the runner would treat ``line`` as a command."""
    text = line.lstrip()
    if text.startswith("::"):  # the `::name k=v,k=v::data` form
        end = text.find("::", 2)
        if end >= 0:
            info = text[2:end]
            name, _, props_text = info.partition(" ")
            if name.lower() in registered:
                props = {}
                for pair in props_text.strip().split(","):
                    key, eq, value = pair.partition("=")
                    if eq and key:
                        props[key] = unescape_property(value)
                return name.lower(), props, unescape_data(text[end + 2:])
    start = line.find("##[")  # the legacy `##[name k=v;k=v]data` form, anywhere in a line
    if start >= 0:
        close = line.find("]", start)
        if close >= 0:
            name = line[start + 3:close].partition(" ")[0]
            if name.lower() in registered:
                return name.lower(), {}, line[close + 1:]
    return None


def replay_log(stdout: str) -> list[Command]:
    """The commands the runner would act on, in order: lines are split like .NET's
    ReadLine (CR, LF, CRLF), and nothing but the resume token counts after
    ``::stop-commands::TOKEN``. Fails when the log ends inside a block."""
    processed = []
    token: str | None = None
    for line in re.split(r"\r\n|\r|\n", stdout):
        registered = RUNNER_COMMANDS | ({token} if token else set())
        found = parse_command(line, registered)
        if found is None:
            continue
        name, _props, data = found
        if token is not None:
            if name == token:
                token = None
            continue
        if name == "stop-commands":
            token = data.lower()
            continue
        processed.append(found)
    assert token is None, "the log ends inside a stop-commands block"
    return processed


def errors(log: str) -> list[tuple[dict[str, str], str]]:
    """The ``::error`` annotations the runner would show: (properties, message)."""
    return [(props, data) for name, props, data in replay_log(log) if name == "error"]


def read_outputs(text: str) -> dict[str, str]:
    """A GITHUB_OUTPUT file as the runner reads it (``k=v`` or ``k<<DELIM`` heredoc)."""
    values: dict[str, str] = {}
    lines = text.split("\n")
    index = 0
    while index < len(lines):
        line = lines[index]
        index += 1
        if not line:
            continue
        eq, heredoc = line.find("="), line.find("<<")
        if eq >= 0 and (heredoc < 0 or eq < heredoc):
            values[line[:eq]] = line[eq + 1:]
            continue
        assert heredoc > 0, f"invalid output line {line!r}"
        name, delimiter = line[:heredoc], line[heredoc + 2:]
        body = []
        while True:
            assert index < len(lines), f"delimiter {delimiter!r} not found"
            if lines[index] == delimiter:
                index += 1
                break
            body.append(lines[index])
            index += 1
        values[name] = "\n".join(body)
    return values
