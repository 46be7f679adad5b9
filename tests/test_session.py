"""session: selecting the units and turning options into jobs, without running them."""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

import pytest

from torchvet.errors import UsageError
from torchvet.options import FailOn, RunOptions
from torchvet.session import (
    build_jobs,
    parse_shard,
    project_dirs,
    select_units,
    settle,
    validate_checks,
)


def project(root: Path, tool: str = "") -> Path:
    (root / "pkg").mkdir(parents=True)
    (root / "pkg" / "__init__.py").write_text("")
    (root / "pkg" / "models.py").write_text("def a():\n    pass\n\n\ndef b():\n    pass\n")
    (root / "pyproject.toml").write_text(textwrap.dedent(f"""\
        [project]
        name = "p"
        version = "0"
        [project.entry-points."torchvet.models"]
        alpha = "pkg.models:a"
        beta = "pkg.models:b"
        [project.entry-points."torchvet.datasets"]
        gamma = "pkg.models:a"
        {tool}"""))
    return root


def test_filters_select_by_name_and_notes_config_for_no_unit(tmp_path: Path) -> None:
    root = project(tmp_path / "p", "[tool.torchvet.models.alpah]\nbatch_size = 4\n")
    sel = select_units(str(root), ["al*"], [], installed=False)
    assert [f.name for f in sel.factories] == ["alpha"]
    assert {f.name for f in sel.all_factories} == {"alpha", "beta", "gamma"}
    assert sel.notes == [f"{root / 'pyproject.toml'}: [tool.torchvet.models.alpah] matches "
                         "no discovered factory"]
    assert [f.name for f in select_units(str(root), [], ["beta"], False).factories] == [
        "alpha", "gamma"]


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"models": ["zzz"]}, "no factory matches --models ['zzz']"),
    ({"durations": ["r.json"]}, "--durations r.json: cannot read it"),
    ({"shard_spec": "0/2"}, "--shard 0/2: expected 1 <= i <= n"),
])
def test_what_cannot_run_is_a_usage_error_naming_the_fix(tmp_path: Path, kwargs: dict,
                                                        message: str) -> None:
    root = project(tmp_path / "p")
    args = {"models": [], "exclude": [], "installed": False, **kwargs}
    with pytest.raises(UsageError, match=re.escape(message)):
        select_units(str(root), **args)


def test_no_factories_shows_the_stanza_to_add(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "x"\nversion = "0"\n')
    with pytest.raises(UsageError, match=re.escape('entry-points."torchvet.models"')):
        select_units(str(tmp_path), [], [], installed=False)


def test_shards_partition_the_selection(tmp_path: Path) -> None:
    root = project(tmp_path / "p")
    shards = [select_units(str(root), [], [], False, shard_spec=f"{i}/2").factories
              for i in (1, 2)]
    names = sorted(f.name for s in shards for f in s)
    assert names == ["alpha", "beta", "gamma"]
    assert parse_shard("2/3") == (2, 3)
    with pytest.raises(UsageError, match="expected i/n"):
        parse_shard("2-3")


def test_check_patterns_are_validated_against_the_catalogue() -> None:
    assert validate_checks(["forward", "-data.workers", "export.*"]) == (
        "forward", "-data.workers", "export.*")
    with pytest.raises(UsageError, match="--checks forwrd matches no check; areas: forward"):
        validate_checks(["forwrd"])


def test_a_moved_check_id_names_its_new_home() -> None:
    with pytest.raises(UsageError, match=r"forward\.probabilities is now "
                                         r"learning\.output_vs_loss .* use the new id"):
        validate_checks(["forward", "-forward.probabilities"])


def test_jobs_carry_the_options_and_share_the_cores(tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    root = project(tmp_path / "p", "[tool.torchvet.models.beta]\ntimeout = 9\n")
    monkeypatch.setattr("torchvet.session.cpu_count", lambda: 8)
    sel = select_units(str(root), [], [], installed=False)
    options = RunOptions(seed=3, jobs=2, timeout=50, checks=("forward",))
    jobs = {j.factory.name: j for j in build_jobs(sel, options)}
    assert {j.threads for j in jobs.values()} == {4}
    assert {j.seed for j in jobs.values()} == {3}
    assert jobs["alpha"].config.timeout == 50 and jobs["beta"].config.timeout == 9
    assert jobs["alpha"].patterns == ("forward",)
    assert project_dirs(sel)[0] == str(root.resolve())


def test_settle_leaves_to_the_project_only_what_the_options_do_not_say(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("torchvet.session.cpu_count", lambda: 8)
    root = project(tmp_path / "p", "[tool.torchvet]\nseed = 5\nfail_on = \"warning\"\n")
    sel = select_units(str(root), [], [], installed=False)
    settled = settle(RunOptions(), sel)
    assert (settled.seed, settled.fail_on, settled.jobs) == (5, FailOn.WARNING, 3)
    asked = settle(RunOptions(seed=0, fail_on=FailOn.NEVER, jobs=2), sel)
    assert (asked.seed, asked.fail_on, asked.jobs) == (0, FailOn.NEVER, 2)
    bare = project(tmp_path / "q")
    plain = settle(RunOptions(jobs=9), select_units(str(bare), ["alpha"], [], installed=False))
    assert (plain.seed, plain.fail_on, plain.jobs) == (0, FailOn.FAILURE, 1)
