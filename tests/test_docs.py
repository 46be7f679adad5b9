"""The user reference stays a reference: docs/checks.md documents every check the
catalogue lists, names no issue number or history, and its links resolve; every results
file in bench/results/ says how to regenerate it and is listed in bench/README.md."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from tests.helpers import ROOT

CHECKS_MD = ROOT / "docs" / "checks.md"
BENCH = ROOT / "bench"


def slug(heading: str) -> str:
    """GitHub's anchor for a Markdown heading."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    return {slug(h) for h in re.findall(r"^#+ (.+)$", path.read_text(encoding="utf-8"), re.M)}


def test_every_check_has_a_section() -> None:
    proc = subprocess.run([sys.executable, "-m", "torchvet", "checks"], cwd=ROOT,
                          capture_output=True, text=True, check=True)
    ids = [line.split()[0] for line in proc.stdout.splitlines() if line.strip()]
    assert len(ids) > 30, proc.stdout
    headings = {h.replace("`", "").split()[0]
                for h in re.findall(r"^### (.+)$", CHECKS_MD.read_text(encoding="utf-8"), re.M)}
    assert not [i for i in ids if i not in headings]


def test_the_reference_names_no_issue_or_history() -> None:
    text = CHECKS_MD.read_text(encoding="utf-8")
    for pattern in (r"\bissue \d+", r"#\d+\b", r"\b20\d\d-\d\d-\d\d\b", r"cost cuts",
                    r"cut short", r"corpus run", r"before issue"):
        assert not re.search(pattern, text, re.I), pattern


def test_links_into_the_docs_resolve() -> None:
    """Relative links (and their #anchors) of the README, docs/ and bench/README.md."""
    pages = [ROOT / "README.md", BENCH / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    broken = []
    for page in pages:
        for target in re.findall(r"\]\(([^)\s]+)\)", page.read_text(encoding="utf-8")):
            if re.match(r"[a-z]+:", target):
                continue
            path, _, anchor = target.partition("#")
            linked = (page.parent / path).resolve() if path else page
            if not linked.exists():
                broken.append(f"{page.name}: {target}")
            elif anchor and linked.suffix == ".md" and anchor not in anchors(linked):
                broken.append(f"{page.name}: {target} (no such section)")
    assert not broken


def test_every_results_file_says_how_to_regenerate_it() -> None:
    readme = (BENCH / "README.md").read_text(encoding="utf-8")
    files = sorted((BENCH / "results").glob("*.md"))
    assert files
    for path in files:
        text = path.read_text(encoding="utf-8")
        command = re.search(r"Regenerate with:\n\n```console\n(python bench/\S+\.py [^\n]*)\n",
                            text)
        assert command, path.name
        assert f"results/{path.name}" in readme, f"bench/README.md does not list {path.name}"
        assert command.group(1) in readme, f"bench/README.md lacks: {command.group(1)}"
