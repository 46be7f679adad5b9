"""The architecture holds: the parent side never imports the worker side or torch, no
module imports another inside a function except the deliberate lazy ones, and no import
cycle hides anywhere (docs/architecture.md states these rules)."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

from tests.helpers import ROOT

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


def imports(module: str, path: Path, tree: ast.Module, *, top_level: bool
            ) -> Iterator[tuple[int, str]]:
    nodes = tree.body if top_level else ast.walk(tree)
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
