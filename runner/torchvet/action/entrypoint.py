"""The torchvet GitHub Action's entrypoint: a thin adapter from the Actions runner to the
``torchvet`` command line. The sequence, and the reports:

1. read the ``INPUT_*`` variables (:mod:`.inputs`) and reject bad values with an
   ``::error::`` naming the fix;
2. mark the workspace a git ``safe.directory`` (it belongs to the runner's user);
3. install the requested torch from the CPU wheel index when it differs from the image's,
   then the project with that torch pinned (:mod:`.install`);
4. run ``torchvet run`` and publish annotations, the job summary and the step outputs;
5. exit with torchvet's code (:class:`~torchvet.errors.ExitCode`: 0 ok, 1 failures per
   ``fail-on``, 2 setup problem, 3 bug, 130 cancelled).

Everything that runs code from the repository goes through :mod:`.untrusted` (own process
group, no tokens, output inside stop-commands). The tokens are also dropped from this
process itself (it re-executes without them), so ``/proc/1/environ`` holds none.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import TextIO

from ..errors import ExitCode
from ..project.config import declared_fail_on
from ..reporters import github as gh
from ..reporters import json_report
from . import baseline, failures, workflow
from .inputs import Inputs, parse_inputs
from .install import (
    PROJECT_FILES,
    constraints_text,
    installed_torch,
    needs_project_files,
    pip_fix,
    project_install_command,
    torch_install_command,
    torch_matches,
    torch_requirement,
)
from .untrusted import (
    CANCELLATION,
    Console,
    Outcome,
    run_untrusted,
    user_code_env,
    without_tokens,
)

MODULE = "torchvet.action.entrypoint"  # what the process re-executes


# --------------------------------------------------------------------------- the workspace


def mark_safe_directory(*paths: Path) -> None:
    git = shutil.which("git")
    if not git:
        return
    for path in dict.fromkeys(str(p) for p in paths):
        subprocess.run([git, "config", "--system", "--add", "safe.directory", path],
                       capture_output=True, check=False)


def restore_ownership(workspace: Path, since: float) -> None:
    """Files we (root) created in the workspace go back to the workspace's owner, so the
    runner's later steps can clean them up (a known pain of container actions)."""
    try:
        owner = workspace.stat()
    except OSError:
        return
    uid = os.geteuid()
    if uid != 0 or owner.st_uid == uid:
        return
    for path in _walk(workspace):
        try:
            st = path.lstat()
            if st.st_uid == uid and st.st_ctime >= since:
                os.lchown(path, owner.st_uid, owner.st_gid)
        except OSError:
            continue


def _walk(root: Path) -> Iterator[Path]:
    for directory, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if d != ".git"]
        base = Path(directory)
        yield base
        for name in files:
            yield base / name


# --------------------------------------------------------------------------- torchvet run


def cli_command(python: str, inputs: Inputs, project: Path, json_path: Path,
                junit_path: Path | None) -> list[str]:
    """The ``torchvet run`` command line the inputs ask for."""
    argv = [python, "-m", "torchvet", "run", str(project), "--no-github",
            "--json", str(json_path), "--device", inputs.device]
    if junit_path is not None:
        argv += ["--junit", str(junit_path)]
    for flag, value in (("--checks", inputs.checks), ("--models", inputs.models),
                        ("--exclude", inputs.exclude), ("--fail-on", inputs.fail_on),
                        ("--shard", inputs.shard), ("--changed-since", inputs.changed_since)):
        if value:
            argv += [flag, value]
    if inputs.jobs is not None:
        argv += ["--jobs", str(inputs.jobs)]
    if inputs.timeout is not None:
        argv += ["--timeout", f"{inputs.timeout:g}"]
    if inputs.seed is not None:
        argv += ["--seed", str(inputs.seed)]
    return argv + baseline.run_arguments(inputs)


def cli_error(tail: Sequence[str]) -> str:
    """The CLI's own error message (``torchvet: error: ...`` or click's ``Error: ...``)
    and what follows it; else the last lines."""
    for index, line in enumerate(tail):
        if line.startswith(("torchvet: error:", "Error:", "Usage:")):
            return "\n".join(tail[index:]).strip()
    return "\n".join(tail[-15:]).strip()


def last_lines(outcome: Outcome, count: int = 20) -> str:
    return "\n".join(outcome.tail[-count:])


# --------------------------------------------------------------------------- main


class Action:
    """One run of the action: the inputs, where things are, and how to report."""

    def __init__(self, env: dict[str, str], console: Console, inputs: Inputs) -> None:
        self.env = env
        self.console = console
        self.inputs = inputs
        self.workspace = Path(env.get("GITHUB_WORKSPACE") or os.getcwd()).resolve()
        self.project = (self.workspace / inputs.path).resolve()
        self.user_env = user_code_env(env)
        self.python = sys.executable

    def fail(self, title: str, message: str, *, code: int = ExitCode.USAGE,
             annotate: bool = True, summarize: bool | None = None) -> int:
        """An ``::error::``, a short job summary and ``conclusion=error`` outputs."""
        if annotate:
            self.console.error(title, message)
        gh.publish_failure(title, message, env=self.env, summarize=self.inputs.summary
                           if summarize is None else summarize)
        return code

    def untrusted(self, title: str, argv: Sequence[str], *, tail_lines: int = 40,
                  **extra_env: str) -> Outcome:
        return run_untrusted(self.console, title, argv, cwd=self.project,
                             env={**self.user_env, **extra_env}, tail_lines=tail_lines)

    def check_project(self) -> int | None:
        """An exit code when the project cannot be installed where ``path`` points."""
        inputs = self.inputs
        if not self.project.is_dir():
            return self.fail(
                failures.PATH_NOT_FOUND,
                f"'{inputs.path}' is not a directory in the workspace ({self.workspace}). "
                "Check out the repository first (actions/checkout) and set 'path' to the "
                "directory that holds your pyproject.toml.")
        if (inputs.install is not None and not inputs.install_command
                and needs_project_files(inputs.install)
                and not any((self.project / f).is_file() for f in PROJECT_FILES)):
            return self.fail(
                failures.NOTHING_TO_INSTALL,
                f"'{inputs.path}' has no pyproject.toml, setup.py or setup.cfg, so pip cannot "
                "install it. Set 'path' to your project's directory, or set 'install: none' "
                "when the project needs no installation.")
        return None

    def install_torch(self) -> int | None:
        """The requested torch, unless the image's already is it."""
        inputs = self.inputs
        if not inputs.torch_version:
            return None
        if torch_matches(installed_torch(self.python, self.user_env), inputs.torch_version):
            return None
        outcome = self.untrusted(
            f"Install torch {inputs.torch_version}",
            torch_install_command(self.python, inputs.torch_version, inputs.torch_index_url))
        if outcome.returncode == 0:
            return None
        return self.fail(
            failures.TORCH_INSTALL,
            f"pip could not install {torch_requirement(inputs.torch_version)} from "
            f"{inputs.torch_index_url} (exit {outcome.returncode}). Check 'torch-version' "
            f"and 'torch-index-url'. pip's last lines:\n{last_lines(outcome)}")

    def install_project(self, constraints: Path) -> int | None:
        inputs = self.inputs
        if inputs.install_command:
            outcome = self.untrusted("Install the project (install-command)",
                                     ["sh", "-c", inputs.install_command],
                                     PIP_CONSTRAINT=str(constraints))
        elif inputs.install is not None:
            outcome = self.untrusted(
                f"Install the project: pip install {shlex.join(inputs.install)}",
                project_install_command(self.python, inputs.install, str(constraints),
                                        inputs.torch_index_url))
        else:
            return None
        if outcome.returncode == 0:
            return None
        what = inputs.install_command or f"pip install {shlex.join(inputs.install or [])}"
        return self.fail(
            failures.INSTALL,
            f"'{what}' failed in '{inputs.path}' (exit {outcome.returncode}). "
            f"{pip_fix(outcome.tail)} Last lines:\n{last_lines(outcome)}")

    def run(self) -> int:
        failed = self.install_torch()
        if failed is not None:
            return failed
        if CANCELLATION.requested:
            return ExitCode.INTERRUPTED
        torch_now = installed_torch(self.python, self.user_env)
        with tempfile.TemporaryDirectory(prefix="torchvet-") as scratch:
            constraints = Path(scratch) / "constraints.txt"
            constraints.write_text(constraints_text(torch_now) if torch_now else "",
                                   encoding="utf-8")
            failed = self.install_project(constraints)
            if failed is not None:
                return failed
            if CANCELLATION.requested:
                return ExitCode.INTERRUPTED
            torch_after = installed_torch(self.python, self.user_env)
            if torch_now and torch_after != torch_now:
                self.console.warning("torch changed", f"installing the project replaced "
                                     f"torch {torch_now} by {torch_after or 'nothing'}")
            return self.check(Path(scratch))

    def check(self, scratch: Path) -> int:
        """``torchvet run``, then the annotations, summary and outputs of its report."""
        inputs = self.inputs
        json_path = Path(inputs.json_file) if inputs.json_file else scratch / "run.json"
        if not json_path.is_absolute():
            json_path = self.workspace / json_path
        junit_path = self.workspace / inputs.junit_file if inputs.junit_file else None
        outcome = self.untrusted(
            "torchvet run", cli_command(self.python, inputs, self.project, json_path,
                                        junit_path), tail_lines=60)
        code = outcome.returncode
        if CANCELLATION.requested and code in (ExitCode.OK, ExitCode.FAILED):
            code = ExitCode.INTERRUPTED
        run = None
        if code in (ExitCode.OK, ExitCode.FAILED, ExitCode.INTERRUPTED) and json_path.is_file():
            try:
                run = json_report.read(json_path)
            except json_report.ReportError as exc:
                self.console.error(failures.UNREADABLE_REPORT, str(exc))
        if run is None:
            return self.no_report(code, outcome)
        fail_on = inputs.fail_on or declared_fail_on(self.workspace / inputs.path) or "failure"
        gh.publish(run, fail_on=fail_on, junit_path=str(junit_path) if junit_path else None,
                   stream=self.console.stream, annotate=inputs.annotations,
                   summarize=inputs.summary, env=self.env)
        counts = gh.counts_for_outputs(run)
        self.console.line(
            f"torchvet: {counts['passed']} passed, {counts['failed']} failed, "
            f"{counts['errors']} errors, {counts['warnings']} warnings, {counts['skipped']} "
            f"skipped; conclusion {gh.conclusion(run)}; exit code {code}")
        return code

    def no_report(self, code: int, outcome: Outcome) -> int:
        if code == ExitCode.USAGE:
            message = cli_error(outcome.tail)
            title = (failures.NO_FACTORIES if "no torchvet factories found" in message
                     else failures.CONFIGURATION)
            return self.fail(title, message)
        return self.fail(
            failures.INTERNAL,
            f"torchvet exited with code {code} without a report; the log group "
            "'torchvet run' has the traceback. Please report it at "
            "https://github.com/torchvet/torchvet/issues. Last lines:\n"
            + last_lines(outcome),
            code=code if code == ExitCode.INTERRUPTED else ExitCode.INTERNAL)


def main(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None,
         stream: TextIO | None = None) -> int:
    env = dict(os.environ if environ is None else environ)
    console = Console(stream)
    started = time.time()
    inputs, errors = parse_inputs(env)
    action = Action(env, console, inputs)
    if errors:
        for error in errors:
            console.error(f"{failures.INVALID_INPUT} '{error.name}'",
                          f"{error} (input '{error.name}')")
        return action.fail(failures.INVALID_INPUTS,
                           "\n".join(f"{e.name}: {e}" for e in errors), annotate=False,
                           summarize=True)  # the summary input may be what is wrong
    failed = action.check_project()
    if failed is not None:
        return failed
    mark_safe_directory(action.workspace, action.project)
    try:
        return action.run()
    finally:
        restore_ownership(action.workspace, started - 1)


def reexec_without_tokens(argv: Sequence[str]) -> None:
    """Replace this process by itself without the tokens in its environment, so no
    process in the container (not even ``/proc/1/environ``) holds them. The new process
    finds no token, so this happens once."""
    if not any(workflow.is_token(k) for k in os.environ):
        return
    sys.stdout.flush()
    os.execve(sys.executable, [sys.executable, "-m", MODULE, *argv],
              without_tokens(os.environ))


def console_main() -> None:
    """The process entry (the image's ENTRYPOINT): drop the tokens, forward cancellation
    to the running child, run, exit with torchvet's code."""
    reexec_without_tokens(sys.argv[1:])
    CANCELLATION.install()
    sys.exit(main(sys.argv[1:]))


if __name__ == "__main__":
    console_main()
