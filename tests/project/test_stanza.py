"""project.stanza: the one edit torchvet init makes — an append to pyproject.toml that
must re-parse to the old data plus the new entries, refused (with the by-hand stanza)
whenever it would not; skeletons written beside, never over a file."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from torchvet.project.scaffold import Candidate
from torchvet.project.stanza import InitError, append_stanza, plan, render
from torchvet.project.tomlcompat import parse_toml

NEW = [Candidate("net", "model", "demo.models:make_net", ""),
       Candidate("digits", "dataset", "demo.data:make_digits", ""),
       Candidate("transformer", "model", "demo.torchvet_factories:make_transformer", "",
                 todo="d_model")]
PYPROJECT = textwrap.dedent("""\
    [project]
    name = "demo"   # keep this comment
    version = "0"

    [tool.black]
    line-length = 100""")


def test_the_stanza_is_appended_and_the_rest_kept_byte_for_byte() -> None:
    new = append_stanza(PYPROJECT, parse_toml(PYPROJECT), NEW)
    assert new.startswith(PYPROJECT + "\n\n")
    data = parse_toml(new)
    assert data["project"]["entry-points"] == {
        "torchvet.models": {"net": "demo.models:make_net"},
        "torchvet.datasets": {"digits": "demo.data:make_digits"},
    }
    assert '# transformer = "demo.torchvet_factories:make_transformer"  # TODO' in new


@pytest.mark.parametrize(("text", "fragment"), [
    ('[project]\nname = "d"\n[project.entry-points."torchvet.models"]\nold = "d.m:f"\n',
     'already has [project.entry-points."torchvet.models"]'),
    ('[project]\nname = "d"\nentry-points = { "console_scripts" = { d = "d:main" } }\n',
     "would make pyproject.toml invalid"),
])
def test_an_append_that_cannot_round_trip_is_refused(text: str, fragment: str) -> None:
    with pytest.raises(InitError) as info:
        append_stanza(text, parse_toml(text), NEW)
    assert fragment in str(info.value)


def write_project(root: Path, pyproject: str | None) -> Path:
    (root / "demo").mkdir(parents=True)
    (root / "demo" / "__init__.py").write_text("")
    (root / "demo" / "models.py").write_text(textwrap.dedent("""\
        from torch import nn


        class Net(nn.Module):
            def __init__(self):
                super().__init__()


        class Big(nn.Module):
            def __init__(self, width):
                super().__init__()
        """))
    if pyproject is not None:
        (root / "pyproject.toml").write_text(pyproject)
    return root


def test_a_plan_shows_the_diff_and_writes_only_when_asked(tmp_path: Path) -> None:
    root = write_project(tmp_path, PYPROJECT)
    proposal = plan(root)
    diff = proposal.diff()
    assert '+net = "demo.models:Net"' in diff and "+++ b/demo/torchvet_factories.py" in diff
    assert (root / "pyproject.toml").read_text() == PYPROJECT
    assert not (root / "demo" / "torchvet_factories.py").exists()
    proposal.write()
    assert parse_toml((root / "pyproject.toml").read_text())["project"]["entry-points"] == {
        "torchvet.models": {"net": "demo.models:Net"}}
    assert "def make_big()" in (root / "demo" / "torchvet_factories.py").read_text()


def test_an_existing_skeleton_is_never_overwritten(tmp_path: Path) -> None:
    root = write_project(tmp_path, PYPROJECT)
    (root / "demo" / "torchvet_factories.py").write_text("# mine\n")
    proposal = plan(root)
    assert root / "demo" / "torchvet_factories.py" not in proposal.writes
    assert [c.name for c in proposal.candidates] == ["net"]


def test_without_a_pyproject_the_stanza_is_shown_for_adding_by_hand(tmp_path: Path) -> None:
    proposal = plan(write_project(tmp_path, None))
    assert "no pyproject.toml" in proposal.refusal
    with pytest.raises(InitError) as info:
        proposal.write()
    assert render(proposal.candidates) in str(info.value)
