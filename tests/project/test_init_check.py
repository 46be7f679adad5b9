"""project.init_check through torchvet init's plan: every proposed entry is built and
its first forward run in an engine worker; what raises moves to the skeleton's TODOs
with its error, and the stanza that results parses with unique keys."""

from __future__ import annotations

import shutil
from pathlib import Path

from torchvet.project.stanza import plan
from torchvet.project.tomlcompat import parse_toml

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "init_projects"


def test_check_moves_an_entry_that_raises_to_the_todos_with_its_error(tmp_path: Path
                                                                      ) -> None:
    root = tmp_path / "vitlib"
    shutil.copytree(FIXTURES / "vitlib", root)
    proposal = plan(root, check=True, timeout=60)
    failed = {c.name: c.error for c in proposal.errors()}
    assert failed == {"xcit": "the factory vitlib.xcit:XCiT raised ValueError: XCiT needs "
                              "a checkpoint path"}
    assert proposal.skipped == ["ensemble"]  # built; its inputs are for the user to declare
    proposal.write()
    stanza = (root / "pyproject.toml").read_text()
    assert "# xcit" in stanza and "XCiT needs a checkpoint path" in stanza
    declared = parse_toml(stanza)["project"]["entry-points"]["torchvet.models"]
    assert set(declared) == {"ensemble", "simple_vit", "simple_vit_3d", "cait", "vit",
                             "siglip"}
    skeleton = (root / "vitlib" / "torchvet_factories.py").read_text()
    assert "# torchvet init --check: the factory vitlib.xcit:XCiT raised ValueError" in skeleton


def test_without_check_nothing_is_built(tmp_path: Path) -> None:
    root = tmp_path / "vitlib"
    shutil.copytree(FIXTURES / "vitlib", root)
    proposal = plan(root)
    assert proposal.checked == 0 and not proposal.errors()
    assert "xcit" in parse_toml(proposal.writes[root / "pyproject.toml"])["project"][
        "entry-points"]["torchvet.models"]
