"""Pull-request-aware selection: which units a change since a git ref can affect.

``torchvet run --changed-since REF`` checks a model or dataset only when its factory
module, or a project module that module imports (transitively), changed since REF. The
import graph is built statically with :mod:`ast`; user code is never imported.

What counts as changed: ``git diff --name-only REF...HEAD`` (the commits since the merge
base, what a pull request shows) plus uncommitted changes (staged, unstaged, untracked).

Conservative by construction; every unit is selected when

- ``pyproject.toml``, ``setup.py``/``setup.cfg``, a requirements file, or any other file
  torchvet cannot trace (configuration, data read at run time) changed in the project;
- a changed Python module cannot be parsed (its imports are unknown).

A unit whose import graph reaches an import that cannot be resolved statically
(``importlib.import_module(name)``, ``__import__(name)``, a module that does not parse)
is selected whenever any project module changed: that import could reach it. Units
whose graph is fully static and untouched are left out. Changes outside the project
directory, to documentation (``*.md``, ``*.rst``, ``docs/``), to ``.github/`` and to
type stubs never select anything.

This module never imports torch.
"""

from __future__ import annotations

import ast
import os
import subprocess
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import UsageError
from .discovery import Factory, Project, locate_module

# Never affect a unit: documentation, CI configuration, type stubs.
IGNORED_SUFFIXES = (".md", ".rst", ".adoc", ".pyi")
IGNORED_DIRS = ("docs", ".github")
IGNORED_NAMES = frozenset({
    "LICENSE", "LICENSE.txt", "LICENSE.md", "COPYING", "NOTICE", "AUTHORS", "CODEOWNERS",
    ".gitignore", ".gitattributes", ".dockerignore", ".pre-commit-config.yaml",
})
DYNAMIC_CALLS = frozenset({
    "import_module", "__import__", "spec_from_file_location", "run_module", "run_path",
})


class ChangesError(UsageError):
    """git cannot say what changed (not a repository, unknown ref, shallow clone)."""


@dataclass
class ModuleInfo:
    """What one project module imports, statically."""

    file: Path
    imports: list[str] = field(default_factory=list)  # candidate module names
    # imports that cannot be resolved statically: (prefix every module it can reach
    # starts with, "" for any; "file:line imports dynamically (...)")
    dynamic: list[tuple[str, str]] = field(default_factory=list)


@dataclass
class ChangedUnits:
    """The outcome: which units to check and why."""

    ref: str
    changed: list[str]  # repo-relative paths, sorted
    everything: str = ""  # why every unit is selected ("" when not)
    reasons: dict[tuple[str, str], str] = field(default_factory=dict)  # (kind, name) -> why

    def selected(self, factories: Iterable[Factory]) -> list[Factory]:
        return [f for f in factories if self.why(f)]

    def why(self, factory: Factory) -> str:
        if self.everything:
            return self.everything
        return self.reasons.get((factory.kind, factory.name), "")

    def summary(self, selected: int, total: int) -> str:
        files = f"{len(self.changed)} changed file(s)"
        if self.everything:
            return f"--changed-since {self.ref}: {files}; every unit selected: {self.everything}"
        return f"--changed-since {self.ref}: {selected} of {total} unit(s) affected by {files}"


# --------------------------------------------------------------------------- git


def _git(args: Sequence[str], cwd: Path) -> str:
    try:
        proc = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True,
                              check=False)
    except OSError as exc:
        raise ChangesError(f"--changed-since needs git: {exc}") from None
    if proc.returncode != 0:
        raise ChangesError(proc.stderr.strip() or f"git {' '.join(args)} failed")
    return proc.stdout


def changed_files(root: Path, ref: str) -> tuple[Path, list[str]]:
    """(repository top, paths changed since ``ref`` relative to it): committed since the
    merge base with ``ref``, plus staged, unstaged and untracked files."""
    if ref.startswith("-"):  # git would read it as an option (git diff --output=FILE)
        raise ChangesError(f"--changed-since {ref}: a git ref cannot start with '-'; pass a "
                           "branch, tag or commit SHA such as origin/main")
    try:
        top = Path(_git(["rev-parse", "--show-toplevel"], root).strip()).resolve()
    except ChangesError as exc:
        raise ChangesError(f"--changed-since: {root} is not in a git repository ({exc})"
                           ) from None
    try:
        _git(["rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}"], top)
    except ChangesError:
        raise ChangesError(
            f"--changed-since {ref}: no such commit in {top}; in GitHub Actions, check out "
            "with fetch-depth: 0 (or fetch the base ref) so the pull request's base exists"
        ) from None
    try:
        committed = _git(["diff", "--name-only", "--no-renames", "-z", f"{ref}...HEAD"], top)
    except ChangesError as exc:
        raise ChangesError(
            f"--changed-since {ref}: cannot diff against HEAD ({exc}); a shallow clone may "
            "lack the merge base: fetch more history (fetch-depth: 0)"
        ) from None
    uncommitted = _git(["diff", "--name-only", "--no-renames", "-z", "HEAD"], top)
    untracked = _git(["ls-files", "--others", "--exclude-standard", "-z"], top)
    names = {n for out in (committed, uncommitted, untracked) for n in out.split("\0") if n}
    return top, sorted(names)


# --------------------------------------------------------------------------- imports


def _package_of(module: str, file: Path) -> str:
    return module if file.name == "__init__.py" else module.rpartition(".")[0]


def _resolve_relative(module: str, file: Path, level: int, name: str | None) -> str | None:
    package = _package_of(module, file)
    parts = package.split(".") if package else []
    if level - 1 > len(parts):
        return None
    base = parts[: len(parts) - (level - 1)]
    if name:
        base.append(name)
    return ".".join(base) or None


def _call_name(node: ast.Call) -> str:
    func = node.func
    if isinstance(func, ast.Attribute):
        return func.attr
    if isinstance(func, ast.Name):
        return func.id
    return ""


def module_imports(module: str, file: Path, text: str, rel: str) -> ModuleInfo:
    """Every module ``text`` may import, wherever the import statement sits (function
    bodies and ``if TYPE_CHECKING:`` included: over-approximating is safe)."""
    info = ModuleInfo(file)
    tree = ast.parse(text, filename=str(file))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            info.imports += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = (
                _resolve_relative(module, file, node.level, node.module)
                if node.level else node.module
            )
            if base is None:
                continue
            info.imports.append(base)
            info.imports += [f"{base}.{a.name}" for a in node.names if a.name != "*"]
        elif isinstance(node, ast.Call) and _call_name(node) in DYNAMIC_CALLS:
            _dynamic_call(node, module, file, rel, info)
    return info


def _text_prefix(node: ast.AST | None) -> tuple[str, bool]:
    """(the constant text a string expression starts with, whether that is all of it):
    ``"a.b"``, ``f"a.{x}"``, ``"a." + x``, ``"a.%s" % x``, ``"a.{}".format(x)``."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value, True
    if isinstance(node, ast.JoinedStr):
        first = node.values[0] if node.values else None
        if isinstance(first, ast.Constant) and isinstance(first.value, str):
            return first.value, False
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        return _text_prefix(node.left)[0], False
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Mod):
        return _text_prefix(node.left)[0].split("%")[0], False
    if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
            and node.func.attr == "format"):
        return _text_prefix(node.func.value)[0].split("{")[0], False
    return "", False


def _dynamic_call(node: ast.Call, module: str, file: Path, rel: str, info: ModuleInfo) -> None:
    """``importlib.import_module(...)`` and friends: an edge when the name is constant,
    else a dynamic import limited to the modules its constant prefix allows."""
    name = _call_name(node)
    arg = node.args[0] if node.args else None
    prefix, whole = _text_prefix(arg) if name in ("import_module", "__import__") else ("", False)
    if prefix.startswith("."):
        package = node.args[1] if len(node.args) > 1 else next(
            (k.value for k in node.keywords if k.arg == "package"), None)
        if isinstance(package, ast.Name) and package.id in ("__name__", "__package__"):
            dots = len(prefix) - len(prefix.lstrip("."))
            base = _resolve_relative(module, file, dots, None) if package.id == "__package__" \
                else ".".join(module.split(".")[: len(module.split(".")) - (dots - 1)])
            prefix = f"{base}.{prefix[dots:]}" if base else ""
        else:
            prefix, whole = "", False
    if whole and prefix:
        info.imports.append(prefix)
        return
    call = ast.unparse(node)
    call = call if len(call) <= 60 else call[:57] + "..."
    info.dynamic.append((prefix, f"{rel}:{node.lineno} imports dynamically ({call})"))


def _with_parents(name: str) -> list[str]:
    parts = name.split(".")
    return [".".join(parts[: i + 1]) for i in range(len(parts))]


class ImportGraph:
    """Project modules (those under the project's import roots) and their imports."""

    def __init__(self, roots: Sequence[Path], top: Path) -> None:
        self.roots = [r for r in roots if r.is_dir()]
        self.top = top
        self.modules: dict[str, ModuleInfo | None] = {}
        self.unparsable: dict[str, str] = {}
        tops: set[str] = set()
        for root in self.roots:
            for entry in os.scandir(root):
                name = entry.name
                if entry.is_dir() and name.isidentifier():
                    tops.add(name)
                elif name.endswith(".py") and name[:-3].isidentifier():
                    tops.add(name[:-3])
        self.top_level = tops

    def relative(self, file: Path) -> str:
        try:
            return file.resolve().relative_to(self.top).as_posix()
        except ValueError:
            return str(file)

    def info(self, module: str) -> ModuleInfo | None:
        """The module's imports, or None when it is not a project module."""
        if module in self.modules:
            return self.modules[module]
        found: ModuleInfo | None = None
        if module.split(".")[0] in self.top_level:
            file = locate_module(module, [str(r) for r in self.roots])
            if file is not None:
                rel = self.relative(file)
                try:
                    text = file.read_text(encoding="utf-8", errors="replace")
                    found = module_imports(module, file, text, rel)
                except (OSError, SyntaxError, ValueError) as exc:
                    found = ModuleInfo(file, dynamic=[("", f"{rel} cannot be parsed "
                                                            f"({exc})")])
        self.modules[module] = found
        return found

    def closure(self, start: str) -> tuple[dict[str, str | None], list[tuple[str, str]]]:
        """Project module names reachable from ``start`` -> the module that imports them
        (None for ``start``), and the unresolvable imports met on the way."""
        parents: dict[str, str | None] = {}
        dynamic: list[tuple[str, str]] = []
        queue: deque[tuple[str, str | None]] = deque(
            (name, None) for name in _with_parents(start))
        while queue:
            name, parent = queue.popleft()
            if name in parents or name.split(".")[0] not in self.top_level:
                continue
            parents[name] = parent
            info = self.info(name)
            if info is None:
                continue  # a name inside a project package that is no module (or deleted)
            dynamic += info.dynamic
            for imported in info.imports:
                for candidate in _with_parents(imported):
                    if candidate not in parents:
                        queue.append((candidate, name))
        return parents, dynamic


def module_name(path: Path, roots: Sequence[Path]) -> str | None:
    """``a/b/c.py`` under an import root -> ``a.b.c`` (``__init__.py`` -> the package)."""
    for root in roots:
        try:
            rel = path.relative_to(root)
        except ValueError:
            continue
        parts = list(rel.with_suffix("").parts)
        if parts and parts[-1] == "__init__":
            parts.pop()
        if parts and all(p.isidentifier() for p in parts):
            return ".".join(parts)
    return None


def _chain(parents: Mapping[str, str | None], name: str) -> list[str]:
    chain = [name]
    while parents.get(chain[-1]) is not None:
        chain.append(parents[chain[-1]])  # type: ignore[arg-type]
    return list(reversed(chain))


def _ignored(rel_to_project: Path) -> bool:
    parts = rel_to_project.parts
    return (
        rel_to_project.suffix in IGNORED_SUFFIXES
        or (len(parts) > 1 and parts[0] in IGNORED_DIRS)
        or rel_to_project.name in IGNORED_NAMES
    )


def import_roots(project: Project, factories: Sequence[Factory]) -> list[Path]:
    """Where the project's modules live: its roots plus the import root of any factory
    file found elsewhere (a package installed in editable mode from the repository)."""
    roots = [Path(p).resolve() for p in project.sys_path]
    for f in factories:
        if not f.file:
            continue
        top = Path(f.file).resolve().parent
        for _ in f.module.split(".")[1:]:
            top = top.parent
        if f.file.endswith("__init__.py"):
            top = top.parent
        if top not in roots:
            roots.append(top)
    return roots


def select_changed(project: Project, factories: Sequence[Factory], ref: str,
                   feeds: Mapping[str, str] | None = None) -> ChangedUnits:
    """Which of ``factories`` the changes since ``ref`` can affect.

    ``feeds`` maps a model name to the dataset factory its config feeds it
    (``[tool.torchvet.models.X] dataset = "Y"``): the model depends on that module too.
    """
    root = project.root.resolve()
    top, names = changed_files(root, ref)
    roots = import_roots(project, factories)
    graph = ImportGraph(roots, top)
    selection = ChangedUnits(ref, names)
    changed_modules: dict[str, str] = {}  # module name -> repo-relative path
    for name in names:
        path = top / name
        try:
            in_project = path.relative_to(root)
        except ValueError:
            continue  # outside the project directory
        if _ignored(in_project):
            continue
        if path.suffix != ".py" or in_project.as_posix() == "setup.py":
            selection.everything = (
                f"{name} changed (project configuration, or a file torchvet cannot trace "
                "to a unit)")
            return selection
        module = module_name(path, roots)
        if module is None:
            continue  # a script or test outside the import roots: no factory imports it
        if path.is_file():
            try:
                ast.parse(path.read_text(encoding="utf-8", errors="replace"))
            except (SyntaxError, ValueError) as exc:
                selection.everything = (f"{name} changed and cannot be parsed ({exc}), so its "
                                        "imports are unknown")
                return selection
        changed_modules[module] = name
    if not changed_modules:
        return selection
    graph.top_level.update(m.split(".")[0] for m in changed_modules)  # deleted ones too
    closures: dict[str, tuple[dict[str, str | None], list[tuple[str, str]]]] = {}
    datasets = {f.name: f for f in factories if f.kind == "dataset"}
    for f in factories:
        starts = [f.module]
        fed = (feeds or {}).get(f.name) if f.kind == "model" else None
        if fed and fed in datasets:
            starts.append(datasets[fed].module)
        why = ""
        dynamic: list[tuple[str, str]] = []
        for start in starts:
            if start not in closures:
                closures[start] = graph.closure(start)
            parents, found = closures[start]
            dynamic += found
            hit = next((m for m in changed_modules if m in parents), None)
            if hit is not None:
                chain = _chain(parents, hit)
                via = f" (imported via {' -> '.join(chain)})" if len(chain) > 1 else ""
                feed = f" through dataset {fed}" if start != f.module else ""
                why = f"{changed_modules[hit]} changed{via}{feed}"
                break
        for prefix, where in dynamic if not why else ():
            reached = next((path for m, path in changed_modules.items()
                            if m.startswith(prefix)), None)
            if reached is not None:
                scope = f"any module under {prefix.rstrip('.')}" if prefix else "any module"
                why = f"{where}, which may reach {scope}; {reached} changed"
                break
        if why:
            selection.reasons[(f.kind, f.name)] = why
    return selection
