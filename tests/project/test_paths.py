"""Report paths: relative to the workspace or checkout the way annotations need them."""

from __future__ import annotations

from pathlib import Path

import pytest

from torchvet.project.paths import find_report_root, report_path


def test_the_report_root_is_the_workspace_then_the_checkout_then_the_path(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    checkout = tmp_path / "repo"
    project = checkout / "models" / "sub"
    project.mkdir(parents=True)
    (checkout / ".git").mkdir()
    monkeypatch.delenv("GITHUB_WORKSPACE", raising=False)
    assert find_report_root(project) == checkout.resolve()
    monkeypatch.setenv("GITHUB_WORKSPACE", str(checkout / "models"))
    assert find_report_root(project) == (checkout / "models").resolve()
    monkeypatch.setenv("GITHUB_WORKSPACE", str(tmp_path / "elsewhere"))
    assert find_report_root(project) == checkout.resolve()
    loose = tmp_path / "loose"
    loose.mkdir()
    assert find_report_root(loose) == loose.resolve()


def test_report_paths_are_posix_and_relative_inside_the_root(tmp_path: Path) -> None:
    assert report_path(tmp_path / "src" / "m.py", tmp_path.resolve()) == "src/m.py"
    outside = tmp_path.parent / "other.py"
    assert report_path(outside, tmp_path.resolve()) == outside.resolve().as_posix()
