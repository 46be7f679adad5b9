"""The architecture holds: the parent side never imports the worker side or torch; the
worker side imports of the parent only the bottom layer and the plain records its jobs
carry; the bottom layer imports nothing above it; unit/ (the runtime) never imports
checks/, and no area of checks/ imports another; no module imports another inside a
function except the deliberate lazy ones; no import cycle hides anywhere, not even
behind ``if TYPE_CHECKING:``; and docs/architecture.md, which states these rules, names
every module of the package."""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

from tests.helpers import ROOT
from torchvet.checks import AREA_MODULES

PACKAGE = ROOT / "runner" / "torchvet"
PARENT_SIDE = ("torchvet.errors", "torchvet.results", "torchvet.cli", "torchvet.session",
               "torchvet.__main__", "torchvet.project", "torchvet.engine",
               "torchvet.reporters", "torchvet.action", "torchvet.pytest_plugin",
               "torchvet.github", "torchvet.commands", "torchvet.options",
               *(f"torchvet.regression.{m}" for m in ("store", "diff", "update", "base_ref",
                                                      "changes", "jobs", "command")))
WORKER_SIDE = ("torch", "torchvet.unit", "torchvet.checks", "torchvet.regression.compute")
PLAIN_METADATA = ("torchvet.checks.catalogue",)  # the catalogue loads without torch
LAZY = ("torch", "docker")  # heavy or optional: imported where used, with a reason
BOTTOM_LAYER = ("torchvet.errors", "torchvet.results", "torchvet.verdict")
# What the worker side (unit/, checks/) may import of the parent side: the bottom layer
# and the plain records a job carries. One name a line, so a move updates one line.
WORKER_MAY_IMPORT = (
    *BOTTOM_LAYER,
    "torchvet.project.config",  # UnitConfig: the unit's [tool.torchvet] table
    "torchvet.project.discovery",  # Factory: the entry point a job names
    "torchvet.project.paths",  # report_path: how a verdict's file is written
    "torchvet.engine.jobs",  # Job: what a worker is handed
    "torchvet.engine.protocol",  # the messages a worker sends and receives
    "torchvet.engine.memory",  # reading the memory there is, and its phrasing
    "torchvet.regression.store",  # the snapshot store (format, Baseline)
    "torchvet.regression.diff",  # comparing with a snapshot
)
# (importer, imported): the runtime never imports the checks (they hand themselves to it:
# checks/suite.py); the adapters never import the spec they are merged into.
FORBIDDEN = (
    ("torchvet.unit", "torchvet.checks"),
    ("torchvet.unit.adapters", "torchvet.unit.spec"),
)
CHECKS = "torchvet.checks"


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def resolve(module: str, node: ast.ImportFrom | ast.Import, is_package: bool) -> list[str]:
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    base = module.split(".") if is_package else module.split(".")[:-1]
    if node.level:
        base = base[: len(base) - (node.level - 1)]
        target = ".".join([*base, node.module] if node.module else base)
    else:
        target = node.module or ""
    # `from . import x` may name a submodule: count both the package and the submodule
    return [target] + [f"{target}.{alias.name}" for alias in node.names]


def modules() -> Iterator[tuple[str, Path, ast.Module]]:
    paths = sorted(PACKAGE.rglob("*.py"))
    assert len(paths) > 40, f"only {len(paths)} modules under {PACKAGE}: wrong root?"
    for path in paths:
        yield module_name(path), path, ast.parse(path.read_text(encoding="utf-8"))


def module_level(body: list[ast.stmt]) -> Iterator[ast.stmt]:
    """The statements that run on import: the module's own, and those inside its
    top-level ``if`` (``if TYPE_CHECKING:`` included) and ``try`` blocks."""
    for node in body:
        yield node
        if isinstance(node, ast.If):
            yield from module_level(node.body)
            yield from module_level(node.orelse)
        elif isinstance(node, ast.Try):
            for block in (node.body, node.orelse, node.finalbody,
                          *(handler.body for handler in node.handlers)):
                yield from module_level(block)


def imports(module: str, path: Path, tree: ast.Module, *, top_level: bool
            ) -> Iterator[tuple[int, str]]:
    nodes = module_level(tree.body) if top_level else ast.walk(tree)
    for node in nodes:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            for target in resolve(module, node, path.name == "__init__.py"):
                yield node.lineno, target


def known(name: str, names: set[str]) -> str | None:
    while name and name not in names:
        name = name.rpartition(".")[0]
    return name or None


def test_the_parent_side_never_imports_the_worker_side_or_torch() -> None:
    crossings = []
    for module, path, tree in modules():
        if not module.startswith(PARENT_SIDE):
            continue
        for line, target in imports(module, path, tree, top_level=False):
            if target.startswith(PLAIN_METADATA):
                continue
            if any(target == w or target.startswith(w + ".") for w in WORKER_SIDE):
                crossings.append(f"{path.relative_to(ROOT)}:{line} imports {target}")
    assert not crossings, "\n".join(crossings)


def within(name: str, prefixes: tuple[str, ...] | str) -> bool:
    prefixes = (prefixes,) if isinstance(prefixes, str) else prefixes
    return any(name == p or name.startswith(p + ".") for p in prefixes)


def package_imports() -> Iterator[tuple[str, str, str]]:
    """(module, where, imported torchvet module) for every import anywhere in a module:
    top level, ``if TYPE_CHECKING:`` blocks and functions alike."""
    for module, path, tree in modules():
        for line, target in imports(module, path, tree, top_level=False):
            if within(target, "torchvet"):
                yield module, f"{path.relative_to(ROOT)}:{line}", target


def test_the_worker_side_imports_of_the_parent_only_what_a_job_carries() -> None:
    allowed = (*WORKER_SIDE[1:], *WORKER_MAY_IMPORT)
    packages = {name.rsplit(".", i)[0] for name in allowed for i in range(name.count("."))}
    crossings = [
        f"{where} imports {target}"
        for module, where, target in package_imports()
        if within(module, WORKER_SIDE[1:])
        and target not in packages  # `from ..engine import protocol` names the package too
        and not within(target, allowed)
    ]
    assert not crossings, "\n".join(crossings)


def test_the_bottom_layer_imports_nothing_above_it() -> None:
    found = [f"{where} imports {target}" for module, where, target in package_imports()
             if module in BOTTOM_LAYER and not within(target, BOTTOM_LAYER)]
    assert not found, "\n".join(found)


def test_forbidden_directions_are_never_imported() -> None:
    found = [f"{where} imports {target}"
             for module, where, target in package_imports()
             for importer, imported in FORBIDDEN
             if within(module, importer) and within(target, imported)]
    assert not found, "\n".join(found)


def area_of(module: str) -> str | None:
    """The check area a module of checks/ belongs to (None: not an area module)."""
    parts = module.split(".")
    if parts[:2] == CHECKS.split(".") and len(parts) > 2 and parts[2] in AREA_MODULES:
        return parts[2]
    return None


def test_no_area_of_the_checks_imports_another() -> None:
    found = []
    for module, where, target in package_imports():
        if not within(module, CHECKS):
            continue
        mine, theirs = area_of(module), area_of(target)
        if theirs is not None and theirs != mine:
            found.append(f"{where} imports {target}: move what they share to "
                         "checks/shared/ or checks/causes/")
    assert not found, "\n".join(found)


def test_the_cycle_check_reads_type_checking_blocks() -> None:
    tree = ast.parse("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n"
                     "    from .b import B\n")
    found = [t for _, t in imports("torchvet.a", PACKAGE / "a.py", tree, top_level=True)]
    assert "torchvet.b" in found


def function_imports(tree: ast.Module) -> Iterator[ast.Import | ast.ImportFrom]:
    for func in ast.walk(tree):
        if isinstance(func, (ast.FunctionDef, ast.AsyncFunctionDef)):
            for node in ast.walk(func):
                if isinstance(node, (ast.Import, ast.ImportFrom)):
                    yield node


def test_no_import_inside_a_function_but_the_lazy_ones_with_a_reason() -> None:
    found = set()
    for module, path, tree in modules():
        text = path.read_text(encoding="utf-8")
        lines = text.splitlines()
        for node in function_imports(tree):
            where = f"{path.relative_to(ROOT)}:{node.lineno}"
            if any(t.split(".")[0] in LAZY for t in resolve(module, node, False)):
                above = node.lineno - 2  # a block of lazy imports shares one reason above it
                while above >= 0 and lines[above].strip().startswith(("import ", "from ")):
                    above -= 1
                if "#" not in lines[node.lineno - 1] and not lines[above].strip().startswith("#"):
                    found.add(f"{where}: lazy import without a one-line reason")
                continue
            found.add(f"{where}: {ast.get_source_segment(text, node)}")
    assert not found, "\n".join(sorted(found))


def test_no_import_cycle() -> None:
    graph: dict[str, set[str]] = {}
    parsed = list(modules())
    names = {module for module, _, _ in parsed}
    for module, path, tree in parsed:
        edges = graph.setdefault(module, set())
        for _, target in imports(module, path, tree, top_level=True):
            owner = known(target, names)
            if owner and owner != module and not module.startswith(owner + "."):
                edges.add(owner)
    cycles = []
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                cycles.append(" -> ".join([*stack[stack.index(nxt):], nxt]))
            elif nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node)
    assert not cycles, "\n".join(cycles)


DOC = ROOT / "docs" / "architecture.md"
DOC_ENTRY = re.compile(r"^( *)([\w.]+/|\w+\.py)(?= |$)")


def documented_modules(text: str) -> set[str]:
    """The package paths the doc's tree names: an entry line's indentation nests it under
    the folder above it; every ``name.py`` on an entry's lines belongs to that folder
    (a folder entry: inside it)."""
    block = text.split("```\nrunner/torchvet/\n", 1)[1].split("```", 1)[0]
    found: set[str] = set()
    folders: list[tuple[int, str]] = []
    context = ""
    for line in block.splitlines():
        entry = DOC_ENTRY.match(line)
        if entry and not entry.group(1):
            break  # back at the repository's root: the package's tree has ended
        if entry:
            indent, name = len(entry.group(1)), entry.group(2)
            while folders and folders[-1][0] >= indent:
                folders.pop()
            context = folders[-1][1] if folders else ""
            if name.endswith("/"):
                context += name
                folders.append((indent, context))
                found.add(context.rstrip("/"))
        found.update(context + name for name in re.findall(r"\b(\w+\.py)\b", line))
    return found


def test_the_architecture_doc_names_every_module() -> None:
    named = documented_modules(DOC.read_text(encoding="utf-8"))
    modules_on_disk = {
        path.relative_to(PACKAGE).parent.as_posix() if path.name == "__init__.py"
        else path.relative_to(PACKAGE).as_posix()
        for path in PACKAGE.rglob("*.py")} - {"."}
    missing = sorted(modules_on_disk - named)
    stale = sorted(n for n in named if not (PACKAGE / n).exists())
    assert not missing, f"docs/architecture.md does not name: {', '.join(missing)}"
    assert not stale, f"docs/architecture.md names modules that do not exist: {', '.join(stale)}"
