"""Markdown, HTML and step-output escaping: user text stays text in what GitHub renders."""

from __future__ import annotations

from torchvet.github import markdown


def test_markdown_escaping_neutralises_markup_html_pipes_and_mentions() -> None:
    text = markdown.md("**bold** <script>alert(1)</script> a|b `code` [link](x) @octocat\nnext")
    assert "<script>" not in text and "|" not in text and "@octocat" not in text
    assert "\\*\\*bold\\*\\*" in text and "\\[link\\]" in text and "\\`code\\`" in text
    assert "\n" not in text
    assert markdown.md("\x1b[31mred\x1b[0m") == "red"
    assert markdown.html_inline("<b>&</b>\n\nx") == "&lt;b&gt;&amp;&lt;/b&gt; x"
    pre = markdown.html_pre("ok </pre><img src=x onerror=alert(1)>\n\nafter a blank line")
    assert pre.count("<pre>") == 1 and pre.count("</pre>") == 1 and pre.endswith("</pre>")
    assert "<img" not in pre


def test_safe_name_keeps_output_values_shell_inert() -> None:
    assert markdown.safe_name("model[torch 2.4]/x-y.z") == "model[torch 2.4]/x-y.z"
    assert markdown.safe_name("evil$(rm -rf ~)`id`;\n") == "evil??rm -rf ???id??"
