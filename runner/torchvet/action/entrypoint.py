"""The torchvet GitHub Action's entrypoint: a thin adapter from the Actions runner to the
``torchvet`` command line.

1. read the ``INPUT_*`` variables (``INPUT_TORCH-VERSION`` or ``INPUT_TORCH_VERSION``) and
   reject bad values with an ``::error::`` naming the fix;
2. mark the workspace a git ``safe.directory`` (it belongs to the runner's user);
3. install the requested torch from the CPU wheel index when it differs from the image's;
4. install the project with the installed torch pinned by a constraints file, so pip
   cannot swap it for a multi-GB CUDA build;
5. run ``torchvet run`` and publish annotations, the job summary and the step outputs;
6. exit with torchvet's code (0 ok, 1 failures per ``fail-on``, 2 setup problem, 3 bug).

Everything that runs code from the repository (pip builds, install commands, the checks)
runs in its own process group with an environment free of GitHub tokens and file-command
paths, inside a ``::group::`` and a ``::stop-commands::<random token>`` block: its output
is relayed line by line and cannot issue workflow commands. The tokens are also dropped
from this process itself (it re-executes without them), so ``/proc/1/environ`` holds none.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from ..errors import ExitCode, UsageError
from ..project.config import declared_fail_on
from ..reporters import github as gh
from ..reporters import json_report
from . import workflow

DEFAULT_TORCH_INDEX = "https://download.pytorch.org/whl/cpu"
PYPI_INDEXES = {"https://pypi.org/simple", "https://pypi.org/simple/",
                "https://pypi.python.org/simple", "https://pypi.python.org/simple/"}

# name -> default; the same defaults as action.yml (the runner passes them; a manual
# `docker run` may not).
DEFAULTS: dict[str, str] = {
    "path": ".",
    "install": ".",
    "install-command": "",
    "torch-version": "",
    "torch-index-url": "",
    "models": "",
    "exclude": "",
    "checks": "",
    "device": "cpu",
    "fail-on": "",
    "junit-file": "torchvet-junit.xml",
    "json-file": "",
    "jobs": "",
    "timeout": "",
    "seed": "",
    "shard": "",
    "changed-since": "",
    "annotations": "true",
    "summary": "true",
}
CHOICES = {
    "device": ("cpu", "cuda", "auto"),
    "fail-on": ("failure", "warning", "never"),
}
# core.getBooleanInput's YAML 1.2 core schema spellings
TRUE = ("true", "True", "TRUE")
FALSE = ("false", "False", "FALSE")
NONE = ("none", "None", "NONE", "false", "False", "FALSE")

_VERSION = re.compile(
    r"^[0-9]+(\.[0-9]+){0,3}((a|b|rc)[0-9]+)?(\.post[0-9]+)?(\.dev[0-9]+)?(\+[A-Za-z0-9.]+)?$")
_GIT_REF = re.compile(r"^[A-Za-z0-9._/@^~{}-]+$")
_SHARD = re.compile(r"^([0-9]+)/([0-9]+)$")


# --------------------------------------------------------------------------- inputs


class InputError(UsageError):
    """A bad input value: ``name`` and a message that says how to fix it."""

    def __init__(self, name: str, message: str) -> None:
        super().__init__(message)
        self.name = name


def get_input(env: Mapping[str, str], name: str) -> str:
    """An input as the runner passes it: ``INPUT_<NAME>`` with the hyphens kept
    (``INPUT_TORCH-VERSION``), or with underscores (``INPUT_TORCH_VERSION``), trimmed;
    the first non-empty spelling wins, else the default."""
    key = "INPUT_" + name.replace(" ", "_").upper()
    for variable in (key, key.replace("-", "_")):
        value = env.get(variable, "").strip()
        if value:
            return value
    return DEFAULTS.get(name, "")


@dataclass
class Inputs:
    path: str = "."
    install: list[str] | None = field(default_factory=lambda: ["."])  # None: skip
    install_command: str = ""
    torch_version: str = ""
    torch_index_url: str = DEFAULT_TORCH_INDEX
    models: str = ""
    exclude: str = ""
    checks: str = ""
    device: str = "cpu"
    fail_on: str = ""
    junit_file: str | None = "torchvet-junit.xml"
    json_file: str | None = None
    jobs: int | None = None
    timeout: float | None = None
    seed: int | None = None
    shard: str | None = None
    changed_since: str | None = None
    annotations: bool = True
    summary: bool = True


def _list(value: str) -> str:
    """A multi-line or comma-separated list input as the CLI's comma-separated form."""
    return ",".join(part.strip() for part in re.split(r"[,\n]", value) if part.strip())


def _bool(name: str, value: str) -> bool:
    if value in TRUE:
        return True
    if value in FALSE:
        return False
    raise InputError(name, f"'{value}' is not a boolean; use true or false")


def parse_inputs(env: Mapping[str, str]) -> tuple[Inputs, list[InputError]]:
    """All inputs, and every bad value found (not only the first)."""
    raw = {name: get_input(env, name) for name in DEFAULTS}
    errors: list[InputError] = []
    inputs = Inputs(path=raw["path"], install_command=raw["install-command"],
                    models=_list(raw["models"]), exclude=_list(raw["exclude"]),
                    checks=_list(raw["checks"]))

    def check(name: str, parse: Callable[[str], Any]) -> Any:
        try:
            return parse(raw[name])
        except InputError as exc:
            errors.append(exc)
        except ValueError as exc:
            errors.append(InputError(name, str(exc)))
        return None

    def choice(name: str) -> Callable[[str], str]:
        def parse(value: str) -> str:
            if value and value not in CHOICES[name]:
                raise InputError(name, f"'{value}' is not one of {', '.join(CHOICES[name])}")
            return value
        return parse

    def install(value: str) -> list[str] | None:
        if value in NONE:
            return None
        try:
            return shlex.split(value)
        except ValueError as exc:
            raise InputError("install", f"cannot split '{value}' into pip arguments "
                                        f"({exc}); check the quotes") from None

    def torch_version(value: str) -> str:
        if value and not _VERSION.match(value):
            raise InputError("torch-version", f"'{value}' is not a torch version; use e.g. "
                                              "2.4.1 or 2.4 (empty: the image's torch)")
        return value

    def index_url(value: str) -> str:
        value = value or env.get("TORCHVET_TORCH_INDEX_URL", "") or DEFAULT_TORCH_INDEX
        if not re.match(r"^(https?|file)://\S+$", value):
            raise InputError("torch-index-url", f"'{value}' is not an http(s) or file URL; "
                                                f"the default is {DEFAULT_TORCH_INDEX}")
        return value

    def report_file(name: str) -> Callable[[str], str | None]:
        def parse(value: str) -> str | None:
            return None if not value or value in NONE else value
        return parse

    def positive_int(name: str, what: str) -> Callable[[str], int | None]:
        def parse(value: str) -> int | None:
            if not value:
                return None
            if not value.isdigit() or int(value) < 1:
                raise InputError(name, f"'{value}' is not {what}")
            return int(value)
        return parse

    def seed(value: str) -> int | None:
        if not value:
            return None
        if not value.isdigit():
            raise InputError("seed", f"'{value}' is not a non-negative integer")
        return int(value)

    def timeout(value: str) -> float | None:
        if not value:
            return None
        try:
            number = float(value)
        except ValueError:
            number = -1.0
        if not number > 0 or number != number or number == float("inf"):
            raise InputError("timeout", f"'{value}' is not a positive number of seconds")
        return number

    def git_ref(value: str) -> str | None:
        if not value:
            return None
        if value.startswith("-") or not _GIT_REF.match(value):
            raise InputError("changed-since", f"'{value}' is not a git ref or commit "
                                              "(e.g. ${{ github.event.pull_request.base.sha }})")
        return value

    def shard(value: str) -> str | None:
        if not value:
            return None
        match = _SHARD.match(value)
        if not match or not 1 <= int(match.group(1)) <= int(match.group(2)):
            raise InputError("shard", f"'{value}' is not i/n with 1 <= i <= n (e.g. 2/4)")
        return value

    inputs.install = check("install", install)
    inputs.torch_version = check("torch-version", torch_version) or ""
    inputs.torch_index_url = check("torch-index-url", index_url) or DEFAULT_TORCH_INDEX
    inputs.device = check("device", choice("device")) or "cpu"
    inputs.fail_on = check("fail-on", choice("fail-on")) or ""
    inputs.junit_file = check("junit-file", report_file("junit-file"))
    inputs.json_file = check("json-file", report_file("json-file"))
    inputs.jobs = check("jobs", positive_int("jobs", "a positive integer (units at once)"))
    inputs.timeout = check("timeout", timeout)
    inputs.seed = check("seed", seed)
    inputs.shard = check("shard", shard)
    inputs.changed_since = check("changed-since", git_ref)
    annotations = check("annotations", lambda v: _bool("annotations", v))
    summary = check("summary", lambda v: _bool("summary", v))
    inputs.annotations = True if annotations is None else annotations
    inputs.summary = True if summary is None else summary
    if inputs.install_command and inputs.install not in (None, ["."]):
        errors.append(InputError("install-command", "set either 'install' (pip arguments) "
                                                    "or 'install-command', not both"))
    return inputs, errors


# --------------------------------------------------------------------------- environment


is_secret = workflow.is_token  # GITHUB_TOKEN, GH_TOKEN, ACTIONS_*TOKEN*


def without_secrets(env: Mapping[str, str]) -> dict[str, str]:
    return {k: v for k, v in env.items() if not is_secret(k)}


def user_code_env(env: Mapping[str, str], **extra: str) -> dict[str, str]:
    """The environment of a process that runs code from the repository: no tokens, no
    file-command paths (so it cannot write step outputs or the summary), no inputs."""
    clean = {
        k: v for k, v in env.items()
        if not is_secret(k) and k.upper() not in workflow.FILE_COMMAND_VARIABLES
        and not k.startswith("INPUT_")
    }
    clean.update(extra)
    return clean


def reexec_without_secrets(argv: Sequence[str]) -> None:
    """Replace this process by itself without the tokens in its environment, so no
    process in the container (not even ``/proc/1/environ``) holds them. The new process
    finds no token, so this happens once."""
    if not any(is_secret(k) for k in os.environ):
        return
    env = without_secrets(os.environ)
    sys.stdout.flush()
    os.execve(sys.executable, [sys.executable, "-m", "torchvet.action.entrypoint", *argv], env)


# --------------------------------------------------------------------------- commands


def pip(python: str, *args: str) -> list[str]:
    return [python, "-m", "pip", *args]


def torch_requirement(version: str) -> str:
    """``torch==2.4.*`` for ``2.4``, ``torch==2.4.1`` for ``2.4.1``."""
    release = version.split("+")[0]
    if re.fullmatch(r"[0-9]+\.[0-9]+", release):
        return f"torch=={version}.*"
    return f"torch=={version}"


def torch_matches(installed: str, requested: str) -> bool:
    """Whether the installed torch satisfies ``torch-version`` (a prefix like 2.4 matches
    2.4.1; a local label like +cpu must match when given)."""
    if not requested:
        return True
    if "+" in requested:
        return installed == requested
    public = installed.split("+")[0]
    return public == requested or public.startswith(requested + ".")


def torch_install_command(python: str, version: str, index_url: str) -> list[str]:
    return pip(python, "install", "--index-url", index_url, torch_requirement(version))


def constraints_text(torch_version: str) -> str:
    return f"torch=={torch_version}\n"


def project_install_command(python: str, args: Sequence[str], constraints: str,
                            index_url: str) -> list[str]:
    """``pip install`` of the project with torch pinned; the torch index is an extra
    index so torchvision & co. resolve to builds matching the installed (CPU) torch."""
    extra = [] if index_url in PYPI_INDEXES else ["--extra-index-url", index_url]
    return pip(python, "install", "--constraint", constraints, *extra, *args)


def cli_command(python: str, inputs: Inputs, project: Path, json_path: Path,
                junit_path: Path | None) -> list[str]:
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
    return argv


def needs_project_files(args: Sequence[str] | None) -> bool:
    """Whether ``install`` points pip at the project directory itself."""
    return any(a == "." or a.startswith((".[", "./[")) or a == "./" for a in args or ())


# --------------------------------------------------------------------------- console


class Console:
    """Our stdout: workflow commands and relayed output, one whole line at a time."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stdout
        self.lock = threading.Lock()

    def line(self, text: str = "") -> None:
        with self.lock:
            self._write(text)

    def _write(self, text: str) -> None:
        self.stream.write(text + "\n")
        self.stream.flush()

    def command(self, name: str, message: str = "", **properties: str | int | None) -> None:
        self.line(workflow.command(name, message, **properties))

    def error(self, title: str, message: str) -> None:
        self.command("error", message, title=f"torchvet: {title}")

    def warning(self, title: str, message: str) -> None:
        self.command("warning", message, title=f"torchvet: {title}")


@dataclass
class Outcome:
    returncode: int
    tail: list[str]


_current: list[subprocess.Popen[bytes]] = []


def run_untrusted(console: Console, title: str, argv: Sequence[str], *, cwd: Path,
                  env: Mapping[str, str], tail_lines: int = 40) -> Outcome:
    """Run ``argv`` in its own process group and relay its output inside a group and a
    stop-commands block; the block closes only after the last relayed line, and nothing
    the process (or a leftover child) prints afterwards reaches stdout."""
    token = secrets.token_hex(16)
    console.command("group", title)
    console.line(f"::stop-commands::{token}")
    tail: deque[str] = deque(maxlen=tail_lines)
    state = {"open": True}
    try:
        proc = subprocess.Popen(list(argv), cwd=cwd, env=dict(env), stdin=subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                start_new_session=True)
    except OSError as exc:
        console.line(f"cannot start {argv[0]}: {exc}")
        console.line(f"::{token}::")
        console.command("endgroup")
        return Outcome(127, [f"cannot start {argv[0]}: {exc}"])
    assert proc.stdout is not None
    stdout = proc.stdout

    def pump() -> None:
        while True:
            chunk = stdout.readline(1 << 16)
            if not chunk:
                return
            text = chunk.decode("utf-8", "replace").rstrip("\r\n")
            tail.append(text)
            with console.lock:
                if state["open"]:
                    console._write(text)

    reader = threading.Thread(target=pump, name="relay", daemon=True)
    reader.start()
    _current.append(proc)
    try:
        returncode = proc.wait()
    finally:
        _current.remove(proc)
        _kill_group(proc.pid)
        reader.join(timeout=10)
        with console.lock:
            state["open"] = False
            console._write(f"::{token}::")
        console.command("endgroup")
    return Outcome(returncode, list(tail))


def _kill_group(pgid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)


def _forward(signum: int, frame: Any) -> None:
    """Pass a cancellation (SIGTERM from `docker stop`) on to the running child: torchvet
    then writes what finished and marks the rest cancelled. As PID 1 we would otherwise
    ignore it."""
    for proc in list(_current):
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signum)
    _interrupted.append(signum)


_interrupted: list[int] = []


# --------------------------------------------------------------------------- steps


def installed_torch(python: str, env: Mapping[str, str]) -> str:
    """The torch version installed for ``python`` (read from metadata, not imported)."""
    result = subprocess.run(
        [python, "-c", "import importlib.metadata as m; print(m.version('torch'))"],
        env=dict(env), capture_output=True, text=True, check=False)
    return result.stdout.strip() if result.returncode == 0 else ""


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


def pip_fix(tail: Sequence[str]) -> str:
    text = "\n".join(tail)
    if "ResolutionImpossible" in text or "conflicting dependencies" in text:
        return ("The project's requirements conflict with the pinned torch. Set "
                "'torch-version' to a torch the project accepts, or relax its torch "
                "requirement.")
    if "No matching distribution" in text or "Could not find a version" in text:
        return ("A requirement is not on the package index. Check its name and version, "
                "or add the index with 'install: --extra-index-url URL .'.")
    return "Fix the project's build or requirements (see the log group above)."


def write_failure(console: Console, env: Mapping[str, str], title: str, message: str,
                  *, summary: bool, code: int, annotate: bool = True) -> int:
    """An ``::error::``, a short job summary and ``conclusion=error`` outputs."""
    if annotate:
        console.error(title, message)
    if summary and env.get("GITHUB_STEP_SUMMARY"):
        text = (f"## 💥 torchvet could not run: {gh.md(title)}\n\n"
                f"{gh.html_pre(message)}\n")
        with open(env["GITHUB_STEP_SUMMARY"], "a", encoding="utf-8") as handle:
            handle.write(text)
    if env.get("GITHUB_OUTPUT"):
        gh.write_outputs(env["GITHUB_OUTPUT"], {
            "passed": "0", "failed": "0", "errors": "0", "skipped": "0", "warnings": "0",
            "conclusion": "error", "junit-file": "", "failures": ""})
    return code


def cli_error(tail: Sequence[str]) -> str:
    """The CLI's own error message (``torchvet: error: ...`` or click's ``Error: ...``)
    and what follows it; else the last lines."""
    for index, line in enumerate(tail):
        if line.startswith(("torchvet: error:", "Error:", "Usage:")):
            return "\n".join(tail[index:]).strip()
    return "\n".join(tail[-15:]).strip()


# --------------------------------------------------------------------------- main


def main(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None,
         stream: TextIO | None = None) -> int:
    env = dict(os.environ if environ is None else environ)
    console = Console(stream)
    started = time.time()
    python = sys.executable

    inputs, errors = parse_inputs(env)
    for error in errors:
        console.error(f"invalid input '{error.name}'", f"{error} (input '{error.name}')")
    if errors:
        return write_failure(console, env, "invalid inputs",
                             "\n".join(f"{e.name}: {e}" for e in errors),
                             summary=True, code=ExitCode.USAGE, annotate=False)

    workspace = Path(env.get("GITHUB_WORKSPACE") or os.getcwd()).resolve()
    project = (workspace / inputs.path).resolve()
    if not project.is_dir():
        return write_failure(
            console, env, "path not found",
            f"'{inputs.path}' is not a directory in the workspace ({workspace}). Check out "
            "the repository first (actions/checkout) and set 'path' to the directory that "
            "holds your pyproject.toml.", summary=inputs.summary, code=ExitCode.USAGE)
    if inputs.install is not None and not inputs.install_command and needs_project_files(
            inputs.install) and not any((project / f).is_file() for f in (
                "pyproject.toml", "setup.py", "setup.cfg")):
        return write_failure(
            console, env, "nothing to install",
            f"'{inputs.path}' has no pyproject.toml, setup.py or setup.cfg, so pip cannot "
            "install it. Set 'path' to your project's directory, or set 'install: none' "
            "when the project needs no installation.", summary=inputs.summary, code=ExitCode.USAGE)

    mark_safe_directory(workspace, project)
    base_env = user_code_env(env)
    try:
        return _run(console, env, base_env, inputs, workspace, project, python)
    finally:
        restore_ownership(workspace, started - 1)


def _run(console: Console, env: dict[str, str], base_env: dict[str, str], inputs: Inputs,
         workspace: Path, project: Path, python: str) -> int:
    torch_before = installed_torch(python, base_env)
    if inputs.torch_version and not torch_matches(torch_before, inputs.torch_version):
        outcome = run_untrusted(
            console, f"Install torch {inputs.torch_version}",
            torch_install_command(python, inputs.torch_version, inputs.torch_index_url),
            cwd=project, env=base_env)
        if outcome.returncode != 0:
            return write_failure(
                console, env, "torch install failed",
                f"pip could not install {torch_requirement(inputs.torch_version)} from "
                f"{inputs.torch_index_url} (exit {outcome.returncode}). Check "
                "'torch-version' and 'torch-index-url'. pip's last lines:\n"
                + "\n".join(outcome.tail[-20:]), summary=inputs.summary, code=ExitCode.USAGE)
    if _interrupted:
        return ExitCode.INTERRUPTED
    torch_now = installed_torch(python, base_env)

    with tempfile.TemporaryDirectory(prefix="torchvet-") as scratch:
        constraints = Path(scratch) / "constraints.txt"
        constraints.write_text(constraints_text(torch_now) if torch_now else "",
                               encoding="utf-8")
        if inputs.install_command:
            outcome = run_untrusted(
                console, "Install the project (install-command)",
                ["sh", "-c", inputs.install_command], cwd=project,
                env={**base_env, "PIP_CONSTRAINT": str(constraints)})
        elif inputs.install is not None:
            argv = project_install_command(python, inputs.install, str(constraints),
                                           inputs.torch_index_url)
            outcome = run_untrusted(console, f"Install the project: pip install "
                                             f"{shlex.join(inputs.install)}",
                                    argv, cwd=project, env=base_env)
        else:
            outcome = Outcome(0, [])
        if outcome.returncode != 0:
            what = inputs.install_command or f"pip install {shlex.join(inputs.install or [])}"
            return write_failure(
                console, env, "install failed",
                f"'{what}' failed in '{inputs.path}' (exit {outcome.returncode}). "
                f"{pip_fix(outcome.tail)} Last lines:\n" + "\n".join(outcome.tail[-20:]),
                summary=inputs.summary, code=ExitCode.USAGE)
        if _interrupted:
            return ExitCode.INTERRUPTED
        torch_after = installed_torch(python, base_env)
        if torch_now and torch_after != torch_now:
            console.warning("torch changed", f"installing the project replaced torch "
                                             f"{torch_now} by {torch_after or 'nothing'}")

        json_path = Path(inputs.json_file) if inputs.json_file else Path(scratch) / "run.json"
        if not json_path.is_absolute():
            json_path = workspace / json_path
        junit_path = workspace / inputs.junit_file if inputs.junit_file else None
        argv = cli_command(python, inputs, project, json_path, junit_path)
        outcome = run_untrusted(console, "torchvet run", argv, cwd=project, env=base_env,
                                tail_lines=60)
        code = outcome.returncode
        if _interrupted and code in (ExitCode.OK, ExitCode.FAILED):
            code = ExitCode.INTERRUPTED
        return _report(console, env, inputs, code, outcome, json_path, junit_path)


def _report(console: Console, env: dict[str, str], inputs: Inputs, code: int,
            outcome: Outcome, json_path: Path, junit_path: Path | None) -> int:
    run = None
    if code in (ExitCode.OK, ExitCode.FAILED, ExitCode.INTERRUPTED) and json_path.is_file():
        try:
            run = json_report.read(json_path)
        except json_report.ReportError as exc:
            console.error("unreadable report", str(exc))
    if run is None:
        if code == ExitCode.USAGE:
            message = cli_error(outcome.tail)
            title = ("no factories found" if "no torchvet factories found" in message
                     else "configuration error")
            return write_failure(console, env, title, message, summary=inputs.summary,
                                 code=ExitCode.USAGE)
        return write_failure(
            console, env, "internal error",
            f"torchvet exited with code {code} without a report; the log group "
            "'torchvet run' has the traceback. Please report it at "
            "https://github.com/torchvet/torchvet/issues. Last lines:\n"
            + "\n".join(outcome.tail[-20:]), summary=inputs.summary,
            code=ExitCode.INTERNAL if code not in (ExitCode.USAGE, ExitCode.INTERRUPTED)
            else code)
    workspace = Path(env.get("GITHUB_WORKSPACE") or os.getcwd())
    fail_on = inputs.fail_on or declared_fail_on(workspace / inputs.path) or "failure"
    gh.publish(run, fail_on=fail_on, junit_path=str(junit_path) if junit_path else None,
               stream=console.stream, annotate=inputs.annotations, summarize=inputs.summary,
               env=env)
    counts = gh.counts_for_outputs(run)
    console.line(
        f"torchvet: {counts['passed']} passed, {counts['failed']} failed, "
        f"{counts['errors']} errors, {counts['warnings']} warnings, {counts['skipped']} "
        f"skipped; conclusion {gh.conclusion(run)}; exit code {code}")
    return code


def console_main() -> None:
    """The process entry (the image's ENTRYPOINT): drop the tokens, forward cancellation
    to the running child, run, exit with torchvet's code."""
    reexec_without_secrets(sys.argv[1:])
    signal.signal(signal.SIGTERM, _forward)
    signal.signal(signal.SIGINT, _forward)
    sys.exit(main(sys.argv[1:]))


if __name__ == "__main__":
    console_main()
