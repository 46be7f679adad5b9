"""The code base stays ruff- and mypy-clean; the README's test command matches CI's."""

from __future__ import annotations

import subprocess
import sys

from tests.helpers import ROOT


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=600)


def test_ruff() -> None:
    proc = run("ruff", "check", ".")
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_mypy() -> None:
    proc = run("mypy")
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_ci_runs_the_readme_test_command() -> None:
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    command = next(line for line in ci.splitlines() if line.startswith("python3 -m venv"))
    assert command in readme
    assert "pip install torch==2.13.0 && pip install -e" in command


def test_readme_documents_every_command_and_option() -> None:
    import click

    from torchvet.cli import cli

    readme = (ROOT / "README.md").read_text()
    missing = []
    for name, command in cli.commands.items():
        if f"torchvet {name}" not in readme:
            missing.append(f"torchvet {name}")
        for param in command.params:
            if not isinstance(param, click.Option):
                continue
            longs = [o for o in param.opts + param.secondary_opts if o.startswith("--")]
            if longs and not any(o in readme for o in longs) and "--help" not in longs:
                missing.append(f"torchvet {name} {longs[0]}")
    assert not missing, f"README.md does not mention: {missing}"
