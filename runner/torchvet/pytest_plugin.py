"""torchvet's checks as pytest items, for projects that already test with pytest.

Registered through the ``pytest11`` entry point and off unless asked: ``pytest
--torchvet [PATH ...]`` or ``[tool.torchvet] pytest = true``. Each unit × check is one
item, ``torchvet::<unit>::<check>``, so ``-k``, ``-m torchvet``, ``-x``, ``--lf``,
``--junitxml`` and xdist apply as to any test. A unit runs in the same isolated worker
as under ``torchvet run`` — once, when its first item runs, with the checks of its
selected items — and each item reports its verdict: failed/error as a failure with the
terminal report's text (culprit, file:line, details), skipped as a skip, xfailed as an
xfail, warned as a :class:`TorchvetWarning` (a pass unless ``-W error``). A unit that
could not be built (or whose worker died before its checks) fails its first item with
that one error; its other items are skipped as not run.

This module is the parent side: it never imports torch.
"""

from __future__ import annotations

import io
import textwrap
import warnings
from collections.abc import Generator, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from .engine.executor import Executor, warm_up
from .engine.jobs import Job
from .errors import UsageError
from .options import RunOptions
from .project.discovery import SNIPPET, discover
from .project.tomlcompat import load_toml
from .reporters.terminal import TerminalReporter
from .results import CheckResult, Status, UnitReport
from .session import build_jobs, select_units

ROOT_ID = "torchvet"
# A model without a dataset in its [tool.torchvet.models.<name>] table gets no data.*
# items, only this one: it runs the data checks when the model's spec declares a dataset
# (known only once the unit is built), else it is one skip saying why they do not apply.
DATA_ITEM = "data.*"


class TorchvetWarning(pytest.PytestWarning):
    """A ``warned`` verdict: suspicious, not wrong (fails the run only under -W error)."""


class VerdictFailed(Exception):
    """A failed, error or xpassed verdict; its text is the terminal report's."""


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("torchvet", "torchvet: vet the project's PyTorch models")
    group.addoption(
        "--torchvet", action="store_true", default=False,
        help="Add torchvet's checks of the project's models and datasets as items "
             "(torchvet::<unit>::<check>); the project is the one holding the given paths' "
             "pyproject.toml, else the rootdir's. Also on with [tool.torchvet] pytest = true.")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "torchvet: a torchvet check of a model or dataset")


def enabled(config: pytest.Config) -> bool:
    """``--torchvet``, or ``[tool.torchvet] pytest = true`` in the rootdir's pyproject
    (read raw: the rest of the table is validated only when the plugin runs, so a typo
    in it never breaks a pytest run that does not ask for torchvet)."""
    if config.getoption("torchvet"):
        return True
    pyproject = config.rootpath / "pyproject.toml"
    try:
        data = load_toml(pyproject) if pyproject.is_file() else {}
    except ValueError:
        return False
    table = data.get("tool", {}).get("torchvet", {})
    return isinstance(table, dict) and table.get("pytest") is True


def project_roots(config: pytest.Config) -> list[Path]:
    """The projects the run's paths belong to: for each path, the nearest directory at
    or above it with a pyproject.toml (not above the rootdir), else the rootdir."""
    roots: list[Path] = []
    base = config.rootpath.resolve()
    for arg in config.args or ["."]:
        path = (config.invocation_params.dir / arg.split("::")[0]).resolve()
        found = next((p for p in (path, *path.parents)
                      if (p / "pyproject.toml").is_file() and (p == base or base in p.parents)),
                     base)
        if found not in roots:
            roots.append(found)
    return roots


@pytest.hookimpl(tryfirst=True)  # before -k / -m / --lf see the items
def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config,
                                  items: list[pytest.Item]) -> None:
    if not enabled(config):
        return
    roots = project_roots(config)
    found: list[pytest.Item] = []
    for root in roots:
        name = ROOT_ID if len(roots) == 1 else f"{ROOT_ID}[{_relative(root, config)}]"
        project = TorchvetProject.from_parent(session, name=name, nodeid=name, path=root)
        found.extend(project.collect_items(config))
    if not found and config.getoption("torchvet"):
        raise pytest.UsageError(
            f"--torchvet: no torchvet factories in {', '.join(map(str, roots))}; declare "
            f"them in pyproject.toml:\n\n{SNIPPET}")
    items.extend(found)


def pytest_collection_finish(session: pytest.Session) -> None:
    jobs = [i.parent.job for i in session.items if isinstance(i, TorchvetItem)]
    if jobs:  # the fork server imports torch while pytest runs the tests before ours
        warm_up(jobs)


def _relative(path: Path, config: pytest.Config) -> str:
    try:
        return path.relative_to(config.rootpath).as_posix() or "."
    except ValueError:
        return path.as_posix()


class TorchvetProject(pytest.Collector):
    """The units of one project (collected from ``pytest_collection_modifyitems``, so
    they appear whatever paths pytest itself walks)."""

    def collect(self) -> list[pytest.Item | pytest.Collector]:
        return list(self.collect_items(self.config))

    def collect_items(self, config: pytest.Config) -> Iterator[TorchvetItem]:
        try:
            if not discover(self.path)[1]:
                return  # a project of the run without factories: nothing of ours in it
            sel = select_units(str(self.path), (), (), None)
        except UsageError as exc:
            raise pytest.UsageError(str(exc)) from None
        seed = sel.config.seed or 0
        options = RunOptions(seed=seed, jobs=1, full_trace=bool(config.option.fulltrace))
        for job in build_jobs(sel, options):
            unit = TorchvetUnit.from_parent(self, name=job.factory.name, job=job)
            yield from unit.collect()


class TorchvetUnit(pytest.Collector):
    """One model or dataset factory; runs once, with the checks of its selected items."""

    def __init__(self, *, job: Job, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.job = job
        self.report: UnitReport | None = None
        self.error_shown = False  # the unit's own error fails one item, once

    def collect(self) -> list[TorchvetItem]:
        """An item per check that can apply: the data checks only for a dataset or a
        model whose table declares one; else one :data:`DATA_ITEM` for them all."""
        job = self.job
        declared = job.factory.kind == "dataset" or bool(job.config.dataset)
        names = job.planned_checks(has_data=declared)
        if not declared and len(job.planned_checks(has_data=True)) > len(names):
            names.append(DATA_ITEM)
        items = [TorchvetItem.from_parent(self, name=check) for check in names]
        for item in items:
            item.add_marker("torchvet")
            if self.config.pluginmanager.hasplugin("xdist"):  # loadgroup keeps a unit whole
                item.add_marker(pytest.mark.xdist_group(name=self.name))
        return items

    def run(self) -> UnitReport:
        if self.report is None:
            selected = tuple(i.name for i in self.session.items
                             if isinstance(i, TorchvetItem) and i.parent is self)
            executor = Executor([replace(self.job, checks=selected)], parallel=1)
            self.report = executor.run()[0]
            if executor.interrupted:
                raise KeyboardInterrupt
        return self.report


class TorchvetItem(pytest.Item):
    """One check of one unit."""

    parent: TorchvetUnit

    def reportinfo(self) -> tuple[Any, int | None, str]:
        factory = self.parent.job.factory
        where = Path(factory.file) if factory.file else self.path
        return where, (factory.line - 1 if factory.line else None), self.nodeid

    def runtest(self) -> None:
        unit = self.parent
        report = unit.run()
        error = report.unit_error
        if error is not None and not unit.error_shown:
            unit.error_shown = True  # one broken unit is one failure, its first item's
            if report.output.strip():
                self.add_report_section("call", "torchvet worker output", report.output)
            raise VerdictFailed(problem_text(report, error))
        if self.name == DATA_ITEM:
            self.data_checks(report)
            return
        result = next((r for r in report.results if r.id == self.name), None)
        if result is None:
            pytest.skip(f"the data checks need a dataset and {report.name}'s spec declares "
                        "none" if self.name.startswith("data.")
                        else f"{self.name} was not run for {report.name}")
        if result.status is Status.PASSED:
            return
        if result.status in (Status.SKIPPED, Status.CANCELLED, Status.NOT_RUN):
            pytest.skip(result.message)
        if result.status is Status.XFAILED:
            pytest.xfail(result.message)
        if result.status is Status.WARNED:
            warnings.warn(TorchvetWarning(f"{self.nodeid}: {result.message}"), stacklevel=1)
            return
        if report.output.strip():
            self.add_report_section("call", "torchvet worker output", report.output)
        raise VerdictFailed(problem_text(report, result))

    def data_checks(self, report: UnitReport) -> None:
        """The :data:`DATA_ITEM`: the data checks of a dataset the spec declared, else
        one skip for them all."""
        found = [r for r in report.results if r.area == "data"]
        if not found:
            pytest.skip(f"the data checks do not apply: {report.name} declares no dataset "
                        f"(`dataset` in its spec or [tool.torchvet.models.{report.name}])")
        bad = [r for r in found if r.status.is_bad]
        for result in found:
            if result.status is Status.WARNED:
                warnings.warn(TorchvetWarning(f"{self.nodeid} {result.id}: {result.message}"),
                              stacklevel=1)
        if bad:
            raise VerdictFailed("\n\n".join(f"{r.id}: {problem_text(report, r)}" for r in bad))

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException],
                     style: Any = None) -> Any:
        if isinstance(excinfo.value, VerdictFailed):
            return str(excinfo.value)
        return super().repr_failure(excinfo, style=style)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]
                              ) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """A skip is reported at the unit's factory, not at this module's ``pytest.skip``."""
    report = yield
    if isinstance(item, TorchvetItem) and report.skipped and isinstance(report.longrepr, tuple):
        path, line, _ = item.reportinfo()
        report.longrepr = (str(path), (line or 0) + 1, report.longrepr[2])
    return report


def problem_text(report: UnitReport, result: CheckResult) -> str:
    """The verdict as ``torchvet run`` prints it among its problems (the item's id is
    pytest's title, so the text starts with the message)."""
    buffer = io.StringIO()
    TerminalReporter(stream=buffer, color=False).problem(report, [result])
    lines = buffer.getvalue().rstrip("\n").splitlines()[1:]
    text = textwrap.dedent("\n".join(lines))
    return f"[{result.status.value}] {text}" if result.status is not Status.FAILED else text
