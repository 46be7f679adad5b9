"""The torchvet GitHub Action's entrypoint: a thin adapter from the Actions runner to the
``torchvet`` command line, and the guard between the repository's code and the job. The
sequence, and the reports:

1. (PID 1, root) make this process not dumpable with no new privileges, and re-execute it
   in isolated mode without the tokens, so ``/proc/1/environ`` holds none;
2. read the ``INPUT_*`` variables (:mod:`.inputs`) and reject bad values with an
   ``::error::`` naming the fix;
3. install the requested torch (root: trusted inputs, wheels only) when it differs from
   the image's;
4. in the image, the project's code runs as the sandbox's account (:mod:`.sandbox`): the
   runner's mounts are hidden from it, the Docker socket must be closed to it, it gets a
   copy of the workspace (:mod:`.workspace_copy`) and a virtual environment over the
   image's torch and torchvet; the project is installed there, then ``torchvet run``
   writes its JSON report into the account's scratch; every process of the account is
   killed after each step;
5. read that report back as untrusted data (a regular file of the account, size-capped,
   cleaned), decide the verdict from it, write the JUnit and JSON reports into the real
   workspace (temp-then-rename, never through a symlink, never out of the workspace by
   one), publish annotations, the job summary and the step outputs;
6. exit with torchvet's code (:class:`~torchvet.errors.ExitCode`: 0 ok, 1 failures per
   ``fail-on``, 2 setup problem, 3 bug, 130 cancelled).

Everything this process needs is imported here, before any code of the repository runs.
Without root or the account (tests) the steps run as the current user, in the workspace.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TextIO

from ..engine.signals import CANCEL_FROM_ENV
from ..errors import ExitCode
from ..github import reporter as gh
from ..github import workflow
from ..options import FailOn
from ..project.config import declared_fail_on
from ..reporters import files, json_report, junit
from ..results import RunReport, Status, exit_code_for
from . import baseline, failures, sandbox
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
from .sandbox import Account, Scratch, find_account, kill_all
from .untrusted import (
    CANCELLATION,
    Console,
    Outcome,
    run_untrusted,
    user_code_env,
    without_tokens,
)
from .workspace_copy import copy_workspace

MODULE = "torchvet.action.entrypoint"  # what the process re-executes
REPORT_LIMIT = 64 * 1024 * 1024  # bytes of the JSON report read back from user code

# A virtual environment over the image's site-packages (its torch and torchvet, which the
# account cannot write), with pip scripts that run the image's pip in it.
VENV_SCRIPT = """\
import os, sys, venv
path = sys.argv[1]
venv.EnvBuilder(system_site_packages=True, with_pip=False, symlinks=True).create(path)
shim = ("#!" + os.path.join(path, "bin", "python") + "\\nimport sys\\n"
        "from pip._internal.cli.main import main\\nsys.exit(main())\\n")
for name in ("pip", "pip3"):
    script = os.path.join(path, "bin", name)
    with open(script, "w") as handle:
        handle.write(shim)
    os.chmod(script, 0o755)
"""


# --------------------------------------------------------------------------- the workspace


def mark_safe_directory(*paths: Path) -> None:
    git = shutil.which("git")
    if not git:
        return
    for path in dict.fromkeys(str(p) for p in paths):
        subprocess.run([git, "config", "--system", "--add", "safe.directory", path],
                       capture_output=True, check=False, cwd="/")


def _inside(path: Path, root: Path) -> bool:
    return path == root or root in path.parents


def report_target(workspace: Path, name: str) -> Path:
    """Where the report input ``name`` may be written: in the workspace, its directory
    (symlinks resolved) must stay in the workspace, so a symlinked directory of the
    repository cannot send it elsewhere; elsewhere (``torchvet docker`` writes into the
    file-commands mount), its directory must hold no symlink at all."""
    given = Path(name)
    target = Path(os.path.normpath(given if given.is_absolute() else workspace / given))
    real_parent = Path(os.path.realpath(target.parent))
    if _inside(target.parent, workspace):
        if not _inside(real_parent, workspace):
            raise files.ReportFileError(
                f"'{name}' would be written to {real_parent}, outside the workspace "
                "(a symlink in the repository points there); choose another path")
    elif real_parent != target.parent:
        raise files.ReportFileError(f"'{name}': {target.parent} holds a symlink")
    return real_parent / target.name


def write_report(workspace: Path, name: str, text: str) -> Path:
    """Write a report into the workspace (see :func:`report_target`); as root, what it
    creates goes to the workspace's owner, so the runner's later steps can remove it."""
    target = report_target(workspace, name)
    missing = [d for d in (target.parent, *target.parent.parents) if not d.exists()]
    files.write_text(target, text)
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        owner = workspace.stat()
        for path in (target, *missing):
            os.lchown(path, owner.st_uid, owner.st_gid)
    return target


def discount_forged_cancellation(run: RunReport) -> RunReport:
    """A run that says it was interrupted while the job was not cancelled was stopped by
    the project's own code: what it calls ``cancelled`` is an ``error``."""
    if not run.interrupted or CANCELLATION.requested:
        return run
    run.interrupted = False
    for _, result in run.all_results():
        if result.status is Status.CANCELLED:
            result.status = Status.ERROR
            result.message = ("cancelled, but the job was not: a signal from the project's "
                              "code stopped torchvet run")
    return run


# --------------------------------------------------------------------------- torchvet run


def cli_command(python: str, inputs: Inputs, project: Path, json_path: Path) -> list[str]:
    """The ``torchvet run`` command line the inputs ask for (its only report: the JSON
    this process reads back and writes the requested reports from)."""
    run = inputs.run
    argv = [python, "-m", "torchvet", "run", str(project), "--no-github",
            "--json", str(json_path), "--device", str(run.device)]
    for flag, value in (("--checks", ",".join(run.checks)), ("--models", ",".join(run.models)),
                        ("--exclude", ",".join(run.exclude)),
                        ("--fail-on", str(run.fail_on or "")), ("--shard", run.shard),
                        ("--changed-since", run.changed_since)):
        if value:
            argv += [flag, value]
    if run.jobs:
        argv += ["--jobs", str(run.jobs)]
    if run.timeout is not None:
        argv += ["--timeout", f"{run.timeout:g}"]
    if run.seed is not None:
        argv += ["--seed", str(run.seed)]
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
    """One run of the action: the inputs, where things are, and how to report.

    ``account`` is the sandbox's user (None: the steps run as this process's user, in the
    workspace itself); ``user_*`` say where and how the project's code runs."""

    def __init__(self, env: dict[str, str], console: Console, inputs: Inputs,
                 account: Account | None = None) -> None:
        self.env = env
        self.console = console
        self.inputs = inputs
        self.account = account
        self.workspace = Path(env.get("GITHUB_WORKSPACE") or os.getcwd()).resolve()
        self.project = (self.workspace / inputs.path).resolve()
        self.python = sys.executable
        self.root_env = user_code_env(env, **({"HOME": "/root"} if account else {}))
        self.user_env = user_code_env(env)
        self.user_python = self.python
        self.user_project = self.project

    @property
    def as_account(self) -> dict[str, object]:
        return self.account.popen_kwargs() if self.account is not None else {}

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
        return run_untrusted(self.console, title, argv, cwd=self.user_project,
                             env={**self.user_env, **extra_env}, tail_lines=tail_lines,
                             account=self.account)

    def settle(self) -> None:
        """Nothing the account started survives a step."""
        if self.account is not None:
            kill_all(self.account)

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

    def check_runner(self) -> int | None:
        """An exit code when the runner exposes something to the account."""
        if self.account is None:
            return None
        open_sockets = sandbox.exposed_sockets(self.account)
        if open_sockets:
            return self.fail(
                failures.UNSAFE_RUNNER,
                f"{', '.join(open_sockets)} is open to every user of the container (its mode "
                "lets any user connect), so the project's code could drive the Docker "
                "engine. Restrict the socket on the runner (chmod 660, owned by the docker "
                "group) and run again.")
        return None

    def install_torch(self) -> int | None:
        """The requested torch, unless the image's already is it: installed by this
        process (root in the image) into the image's site-packages, before any code of
        the repository runs."""
        inputs = self.inputs
        if not inputs.torch_version:
            return None
        if torch_matches(installed_torch(self.python, self.root_env), inputs.torch_version):
            return None
        outcome = run_untrusted(
            self.console, f"Install torch {inputs.torch_version}",
            torch_install_command(self.python, inputs.torch_version, inputs.torch_index_url),
            cwd=Path("/"), env=self.root_env)
        if outcome.returncode == 0:
            return None
        return self.fail(
            failures.TORCH_INSTALL,
            f"pip could not install {torch_requirement(inputs.torch_version)} from "
            f"{inputs.torch_index_url} (exit {outcome.returncode}). Check 'torch-version' "
            f"and 'torch-index-url'. pip's last lines:\n{last_lines(outcome)}")

    def enter_sandbox(self, scratch: Scratch) -> int | None:
        """The account's copy of the workspace and virtual environment (nothing without
        an account: the steps then run in the workspace with this Python)."""
        account = self.account
        if account is None:
            return None
        stats = copy_workspace(self.workspace, scratch.workspace, account)
        self.console.line(f"torchvet: the project's code runs as '{account.name}' (uid "
                          f"{account.uid}) in a copy of the workspace: {stats.describe()}")
        self.user_project = scratch.workspace / self.inputs.path
        self.user_env = {
            **self.user_env, "HOME": str(scratch.home), "TMPDIR": str(scratch.tmp),
            "GITHUB_WORKSPACE": str(scratch.workspace), "VIRTUAL_ENV": str(scratch.venv),
            "PATH": f"{scratch.venv / 'bin'}{os.pathsep}{self.user_env.get('PATH', '')}"}
        made = subprocess.run([self.python, "-I", "-c", VENV_SCRIPT, str(scratch.venv)],
                              cwd=scratch.home, env=self.user_env, capture_output=True,
                              text=True, check=False, **account.popen_kwargs())
        self.settle()
        if made.returncode != 0:
            return self.fail(failures.SANDBOX, "could not create the virtual environment "
                             f"the project is installed in:\n{made.stderr[-3000:]}",
                             code=ExitCode.INTERNAL)
        self.user_python = str(scratch.venv / "bin" / "python")
        return None

    def install_project(self, constraints: Path) -> int | None:
        inputs = self.inputs
        if inputs.install_command:
            outcome = self.untrusted("Install the project (install-command)",
                                     ["sh", "-c", inputs.install_command],
                                     PIP_CONSTRAINT=str(constraints))
        elif inputs.install is not None:
            outcome = self.untrusted(
                f"Install the project: pip install {shlex.join(inputs.install)}",
                project_install_command(self.user_python, inputs.install, str(constraints),
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
        failed = self.check_runner() or self.install_torch()
        if failed is not None:
            return failed
        if CANCELLATION.requested:
            return ExitCode.INTERRUPTED
        torch_now = installed_torch(self.python, self.root_env)
        with tempfile.TemporaryDirectory(prefix="torchvet-") as directory:
            scratch = Scratch.create(Path(directory), self.account)
            constraints = scratch.root / "constraints.txt"
            constraints.write_text(constraints_text(torch_now) if torch_now else "",
                                   encoding="utf-8")
            constraints.chmod(0o644)
            mounts = sandbox.runner_mounts(self.env) if self.account else []
            with sandbox.hidden(mounts, keep=[scratch.root]):
                failed = self.enter_sandbox(scratch) or self.install_project(constraints)
                self.settle()
                if failed is not None:
                    return failed
                if CANCELLATION.requested:
                    return ExitCode.INTERRUPTED
                torch_after = installed_torch(self.user_python, self.user_env,
                                              **self.as_account)
                self.settle()
                if torch_now and torch_after != torch_now:
                    self.console.warning("torch changed", f"installing the project replaced "
                                         f"torch {torch_now} by {torch_after or 'nothing'}")
                json_path = scratch.out / "run.json"
                outcome = self.untrusted(
                    "torchvet run", cli_command(self.user_python, self.inputs,
                                                self.user_project, json_path),
                    tail_lines=60, **{CANCEL_FROM_ENV: str(os.getpid()),
                                        workflow.RELAYED_ENV: "1"})
            return self.check(outcome, json_path)

    def read_report(self, code: int, json_path: Path) -> RunReport | None:
        """The CLI's report, read as untrusted data: only a regular file of the account,
        of bounded size, cleaned; a cancellation the job did not ask for is an error."""
        if code not in (ExitCode.OK, ExitCode.FAILED, ExitCode.INTERRUPTED):
            return None
        if not json_path.is_file():
            return None
        owner = self.account.uid if self.account is not None else os.getuid()
        try:
            run = json_report.read(json_path, follow_symlinks=False, owner=owner,
                                   limit=REPORT_LIMIT)
        except json_report.ReportError as exc:
            self.console.error(failures.UNREADABLE_REPORT, str(exc))
            return None
        return discount_forged_cancellation(run)

    def check(self, outcome: Outcome, json_path: Path) -> int:
        """The verdict from the report, the report files, the annotations, summary and
        outputs."""
        inputs = self.inputs
        run = self.read_report(outcome.returncode, json_path)
        if run is None:
            return self.no_report(outcome.returncode, outcome)
        fail_on = inputs.run.fail_on or FailOn(declared_fail_on(self.project) or FailOn.FAILURE)
        code = (ExitCode.INTERRUPTED if run.interrupted or CANCELLATION.requested
                else exit_code_for(run, fail_on))
        junit_path = None
        try:
            if inputs.run.junit:
                junit_path = write_report(self.workspace, inputs.run.junit,
                                          junit.render(run, fail_on))
            if inputs.run.json_path:
                write_report(self.workspace, inputs.run.json_path, json_report.render(run))
        except OSError as exc:
            self.console.error(failures.REPORT_FILE, f"{exc}")
            code = max(code, ExitCode.USAGE) if code != ExitCode.INTERRUPTED else code
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
         stream: TextIO | None = None, account: Account | None = None) -> int:
    env = dict(os.environ if environ is None else environ)
    console = Console(stream)
    inputs, errors = parse_inputs(env)
    action = Action(env, console, inputs, account)
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
    return action.run()


def reexec_without_tokens(argv: Sequence[str]) -> None:
    """Replace this process by itself without the tokens in its environment, so no
    process in the container (not even ``/proc/1/environ``) holds them, in isolated mode
    (``-I``: nothing on ``sys.path`` from the working directory, the workspace). The new
    process finds no token, so this happens once."""
    if not any(workflow.is_token(k) for k in os.environ):
        return
    sys.stdout.flush()
    os.execve(sys.executable, [sys.executable, "-I", "-m", MODULE, *argv],
              without_tokens(os.environ))


def console_main() -> None:
    """The process entry (the image's ENTRYPOINT): harden this process, drop the tokens,
    forward cancellation to the running child, run as the sandbox's account where the
    image has one, exit with torchvet's code."""
    sandbox.harden_self()
    reexec_without_tokens(sys.argv[1:])
    CANCELLATION.install()
    sys.exit(main(sys.argv[1:], account=find_account()))


if __name__ == "__main__":
    console_main()
