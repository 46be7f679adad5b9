"""Static checks of the action: action.yml and the workflows against check-jsonschema's
built-in GitHub schemas, the Dockerfile with hadolint, the Docker scripts with bash -n.
Each validator is also shown a broken file, so a validator that accepts anything fails."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from ruamel.yaml import YAML

from tests.helpers import ROOT
from torchvet.github import reporter as gh
from torchvet.results import RunReport

BIN = Path(sys.executable).parent
WORKFLOWS = sorted((ROOT / ".github" / "workflows").glob("*.yml"))


def tool(name: str) -> str:
    found = shutil.which(name, path=str(BIN)) or shutil.which(name)
    assert found, f"{name} is not installed (pip install -e '.[test]')"
    return found


def check_jsonschema(schema: str, *files: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([tool("check-jsonschema"), "--builtin-schema", schema,
                           *map(str, files)], capture_output=True, text=True, timeout=120)


def hadolint(dockerfile: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([tool("hadolint"), "--no-color", str(dockerfile)],
                          capture_output=True, text=True, timeout=120)


def test_action_yml_matches_the_github_actions_schema(tmp_path: Path) -> None:
    ok = check_jsonschema("vendor.github-actions", ROOT / "action.yml")
    assert ok.returncode == 0, ok.stdout + ok.stderr
    broken = tmp_path / "action.yml"
    broken.write_text((ROOT / "action.yml").read_text().replace("using: docker",
                                                                "using: dockr"))
    assert check_jsonschema("vendor.github-actions", broken).returncode != 0


def test_action_yml_declares_the_outputs_the_entrypoint_writes() -> None:
    """(Its inputs are tested against action/inputs.py in tests/action/test_inputs.py.)"""
    action = YAML(typ="safe").load((ROOT / "action.yml").read_text(encoding="utf-8"))
    assert action["runs"] == {"using": "docker", "image": "Dockerfile"}
    assert set(action["outputs"]) == set(gh.outputs(RunReport(), None, {}))
    assert all(spec.get("description") for spec in action["outputs"].values())
    for name, spec in action["inputs"].items():
        assert spec.get("description"), name
        assert "default" in spec, name
    assert action["branding"]["icon"] and action["branding"]["color"]


@pytest.mark.parametrize("workflow", WORKFLOWS, ids=[w.name for w in WORKFLOWS])
def test_workflows_match_the_github_workflows_schema(workflow: Path) -> None:
    result = check_jsonschema("vendor.github-workflows", workflow)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_expected_workflows_exist_and_the_schema_rejects_nonsense(tmp_path: Path) -> None:
    assert {w.name for w in WORKFLOWS} >= {"ci.yml", "self-test.yml", "release.yml"}
    broken = tmp_path / "broken.yml"
    broken.write_text("name: x\non: push\njobs:\n  a:\n    runs-on: ubuntu-latest\n"
                      "    stepz: []\n")
    assert check_jsonschema("vendor.github-workflows", broken).returncode != 0


def test_self_test_uses_the_local_action() -> None:
    text = (ROOT / ".github" / "workflows" / "self-test.yml").read_text(encoding="utf-8")
    assert "uses: ./" in text and "tests/fixtures/action/buggy" in text
    assert "fail-on: never" in text


def test_dockerfile_is_hadolint_clean(tmp_path: Path) -> None:
    result = hadolint(ROOT / "Dockerfile")
    assert result.returncode == 0 and result.stdout.strip() == "", result.stdout
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM ubuntu\nRUN apt-get install curl\nENTRYPOINT python x.py\n")
    flagged = hadolint(bad)
    assert flagged.returncode != 0 and "DL3006" in flagged.stdout


def test_dockerfile_contract() -> None:
    text = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    assert text.index("ARG PYTHON_VERSION=3.11") < text.index(
        "FROM python:${PYTHON_VERSION}-slim")
    for line in ("ARG TORCH_VERSION=", "ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu",
                 "PYTHONUNBUFFERED=1", "PIP_NO_CACHE_DIR=1", "PIP_ROOT_USER_ACTION=ignore",
                 'ENTRYPOINT ["python", "-I", "/opt/torchvet/entrypoint.py"]',
                 "useradd --system --uid", "chmod a-s"):
        assert line in text, line
    assert text.index('"torch==${TORCH_VERSION}"') < text.index("COPY . /opt/torchvet/")
    assert "USER " not in text  # the entrypoint starts as root and drops to the account
    # .dockerignore allow-lists the sources: no .venv, .git or tests in the build context
    rules = [line for line in (ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines()
             if line.strip() and not line.startswith("#")]
    assert rules[0] == "*"
    assert {"!pyproject.toml", "!runner/", "!entrypoint.py"} <= set(rules)


@pytest.mark.parametrize("script", sorted((ROOT / "scripts" / "docker").glob("*.sh")),
                         ids=lambda p: p.name)
def test_docker_scripts_parse(script: Path) -> None:
    result = subprocess.run(["bash", "-n", str(script)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert script.stat().st_mode & 0o111, f"{script.name} is not executable"
