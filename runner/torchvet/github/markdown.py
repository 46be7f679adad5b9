"""Text from user code made inert in what GitHub renders: Markdown paragraphs and table
cells, HTML blocks of the job summary, and step-output values a later step may paste into
a shell. One home for these rules (workflow commands escape in :mod:`.workflow`)."""

from __future__ import annotations

import re

_CONTROL = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]|[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_SAFE_NAME = re.compile(r"[^A-Za-z0-9_.\-\[\]/ +]")


def strip_control(text: str) -> str:
    """Drop ANSI escape sequences and control characters (tabs and newlines stay)."""
    return _CONTROL.sub("", text)


_MD_SPECIAL = set("\\`*_[]~")
_HTML = {"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;",
         "|": "&#124;", "@": "&#64;"}


def fold(text: str) -> str:
    """One line: control characters dropped, runs of whitespace made one space."""
    return " ".join(strip_control(text).split())


def md(text: str) -> str:
    """Text for a Markdown paragraph or table cell: one line, no markup, no HTML, no
    table pipes, no @-mentions."""
    return "".join(_HTML.get(ch) or (f"\\{ch}" if ch in _MD_SPECIAL else ch)
                   for ch in fold(text))


def html_inline(text: str) -> str:
    """Text inside an HTML block (``<summary>``): one line, HTML-escaped. Markdown is not
    processed inside HTML blocks, so no backslashes; a blank line would end the block, so
    the text is folded onto one line."""
    return "".join(_HTML.get(ch, ch) for ch in fold(text))


def html_pre(text: str) -> str:
    """A ``<pre>`` block: GitHub's Markdown keeps it raw up to ``</pre>``, which the
    escaping makes impossible to reach early."""
    body = "".join(_HTML.get(ch, ch) for ch in strip_control(text).rstrip("\n"))
    return f"<pre>{body}</pre>"


def safe_name(text: str) -> str:
    """A name fit for a step output another step may paste into a shell: anything but
    letters, digits and ``_.-[]/ +`` becomes ``?``."""
    return _SAFE_NAME.sub("?", " ".join(text.split()))
