"""Entry-point names reach capture-file paths, logs, annotations and step outputs: a name
with a separator or a control character is a clear error naming the entry, before any
unit runs."""

from __future__ import annotations

from pathlib import Path

import pytest

from torchvet.project.discovery import DiscoveryError, check_entry_point, discover

HEAD = '[project]\nname = "p"\nversion = "0"\n[project.entry-points."torchvet.models"]\n'


@pytest.mark.parametrize("name", ["resnet18", "vit_b.16", "t5-small", "mlp[wide]",
                                  "a+b", "two words"])
def test_ordinary_names_are_accepted(name: str) -> None:
    check_entry_point("pyproject.toml", "torchvet.models", name, "pkg.m:make")


@pytest.mark.parametrize(("toml_key", "shown"), [
    ('"nul\\u0000name"', "'nul\\x00name'"),
    ('"a/b"', "'a/b'"),
    ('"line\\n::error::forged"', "'line\\n::error::forged'"),
    ('"x\\r"', "'x\\r'"),
    ('"é"', "'é'"),
    ('"a:b"', "'a:b'"),
])
def test_a_bad_name_is_an_error_naming_the_entry(tmp_path: Path, toml_key: str,
                                                 shown: str) -> None:
    (tmp_path / "pyproject.toml").write_text(
        HEAD + f'good = "pkg.m:make"\n{toml_key} = "pkg.m:make"\n', encoding="utf-8")
    with pytest.raises(DiscoveryError) as caught:
        discover(tmp_path)
    message = str(caught.value)
    assert shown in message and "torchvet.models" in message
    assert "letters, digits" in message and "\n" not in message and "\x00" not in message


def test_a_control_character_in_the_value_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text(HEAD + 'ok = "pkg.m:make\\n::error::x"\n')
    with pytest.raises(DiscoveryError, match="control character") as caught:
        discover(tmp_path)
    assert "\n" not in str(caught.value)
