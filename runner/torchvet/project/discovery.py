"""Find model and dataset factories without importing any user code.

Two sources: the ``pyproject.toml`` of the project at PATH (read as TOML, the project
need not be installed) and the entry points of installed distributions (read from
their metadata). Source file and line are found by locating the module file on disk
and parsing it with :mod:`ast`, never by importing it.
"""

from __future__ import annotations

import ast
import fnmatch
import importlib.metadata as metadata
import os
import re
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import UsageError
from .tomlcompat import load_toml

MODEL_GROUP = "torchvet.models"
DATASET_GROUP = "torchvet.datasets"
GROUPS = {MODEL_GROUP: "model", DATASET_GROUP: "dataset"}

SNIPPET = """\
[project.entry-points."torchvet.models"]
my_model = "mypackage.models:make_model"      # a zero-argument factory

[project.entry-points."torchvet.datasets"]   # optional
train_set = "mypackage.data:make_train_set\""""


class DiscoveryError(UsageError):
    """The project cannot be read (bad pyproject, bad entry point value)."""


# A unit's name reaches file names, logs, annotations and step outputs: no separators,
# no control characters, nothing a shell or the Actions log would read as syntax.
_NAME = re.compile(r"[A-Za-z0-9_.\-\[\]+ ]{1,200}")
_VALUE_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def check_entry_point(where: str, group: str, name: str, value: str) -> None:
    """Raise :class:`DiscoveryError` naming the entry when its name or value is unusable."""
    if not _NAME.fullmatch(name):
        raise DiscoveryError(
            f'{where}: [project.entry-points."{group}"] {name!r}: an entry point name may '
            "hold only letters, digits, '_', '.', '-', '[', ']', '+' and spaces (at most "
            "200); rename it")
    if _VALUE_CONTROL.search(value):
        raise DiscoveryError(
            f'{where}: [project.entry-points."{group}"] {name} = {value!r}: the value '
            'holds a control character; it must read "module:function"')


@dataclass(frozen=True)
class Factory:
    """One declared factory: enough to import and call it in a worker process."""

    name: str
    kind: str  # "model" | "dataset"
    dist: str
    value: str  # "module:attr"
    file: str | None = None
    line: int | None = None
    sys_path: tuple[str, ...] = field(default=())

    @property
    def module(self) -> str:
        return self.value.partition(":")[0].strip()

    @property
    def attr(self) -> str:
        return self.value.partition(":")[2].strip()

    def to_dict(self) -> dict[str, object]:
        return {
            "name": self.name,
            "kind": self.kind,
            "dist": self.dist,
            "value": self.value,
            "file": self.file,
            "line": self.line,
        }


@dataclass
class Project:
    """The project at PATH as far as torchvet cares."""

    root: Path
    pyproject: Path | None
    dist_name: str
    data: dict[str, object]
    sys_path: tuple[str, ...]


def load_project(path: str | os.PathLike[str]) -> Project:
    """Read the project at ``path`` (a directory or a pyproject.toml file)."""
    root = Path(path).resolve()
    if root.is_file():
        root = root.parent
    if not root.exists():
        raise DiscoveryError(f"{path}: no such directory")
    pyproject = root / "pyproject.toml"
    data: dict[str, object] = {}
    if pyproject.is_file():
        try:
            data = load_toml(pyproject)
        except ValueError as exc:
            raise DiscoveryError(f"{pyproject}: invalid TOML: {exc}") from None
    project_table = data.get("project")
    dist_name = ""
    if isinstance(project_table, dict):
        dist_name = str(project_table.get("name") or "")
    src = root / "src"
    sys_path = (str(src), str(root)) if src.is_dir() else (str(root),)
    return Project(
        root=root,
        pyproject=pyproject if pyproject.is_file() else None,
        dist_name=dist_name or root.name,
        data=data,
        sys_path=sys_path,
    )


def project_entry_points(project: Project) -> list[tuple[str, str, str]]:
    """(group, name, value) triples declared in the project's pyproject."""
    table = project.data.get("project")
    if not isinstance(table, dict):
        return []
    eps = table.get("entry-points", {})
    if not isinstance(eps, dict):
        raise DiscoveryError(f"{project.pyproject}: [project.entry-points] must be a table")
    found = []
    for group in GROUPS:
        entries = eps.get(group, {})
        if not isinstance(entries, dict):
            raise DiscoveryError(
                f'{project.pyproject}: [project.entry-points."{group}"] must be a table of '
                'name = "module:function"'
            )
        for name, value in entries.items():
            if not isinstance(value, str) or ":" not in value:
                raise DiscoveryError(
                    f'{project.pyproject}: [project.entry-points."{group}"] {name!r} = '
                    f'{value!r} must be a string "module:function"'
                )
            check_entry_point(str(project.pyproject), group, str(name), value)
            found.append((group, str(name), value))
    return found


def _installed_entry_points(
    exclude_dist: str,
) -> Iterable[tuple[str, str, str, metadata.Distribution | None]]:
    normalized_exclude = _normalize(exclude_dist)
    for group in GROUPS:
        for ep in metadata.entry_points(group=group):
            dist = getattr(ep, "dist", None)
            dist_name = dist.metadata["Name"] if dist is not None else ""
            if normalized_exclude and _normalize(dist_name) == normalized_exclude:
                continue
            check_entry_point(f"the installed distribution {dist_name!r}", group, ep.name,
                              ep.value)
            yield group, ep.name, ep.value, dist


def _normalize(name: str) -> str:
    return name.lower().replace("-", "_").replace(".", "_") if name else ""


def discover(
    path: str | os.PathLike[str] = ".",
    *,
    include_installed: bool | None = None,
) -> tuple[Project, list[Factory]]:
    """All factories for the project at ``path``.

    By default the project's own pyproject entry points are used; when it declares
    none (a ``setup.py`` project that was installed, say), the entry points of the
    installed distributions are used instead. ``include_installed=True`` always adds
    them, ``False`` never does.
    """
    project = load_project(path)
    factories: list[Factory] = []
    for group, name, value in project_entry_points(project):
        factories.append(
            _make_factory(name, GROUPS[group], project.dist_name, value, project.sys_path)
        )
    use_installed = include_installed if include_installed is not None else not factories
    if use_installed:
        own = project.dist_name if factories else ""
        for group, name, value, dist in _installed_entry_points(own):
            dist_name = dist.metadata["Name"] if dist is not None else ""
            factories.append(
                _make_factory(name, GROUPS[group], dist_name, value, (), distribution=dist)
            )
    return project, _disambiguate(factories)


def _disambiguate(factories: list[Factory]) -> list[Factory]:
    """Names are unique per kind; a clash between distributions is qualified by dist."""
    seen: dict[tuple[str, str], int] = {}
    for f in factories:
        seen[(f.kind, f.name)] = seen.get((f.kind, f.name), 0) + 1
    out = []
    keys: set[tuple[str, str]] = set()
    for f in factories:
        name = f.name
        if seen[(f.kind, f.name)] > 1:
            name = f"{f.dist}.{f.name}"
        if (f.kind, name) in keys:
            continue
        keys.add((f.kind, name))
        out.append(
            Factory(name, f.kind, f.dist, f.value, f.file, f.line, f.sys_path)
            if name != f.name
            else f
        )
    return sorted(out, key=lambda f: (f.kind != "model", f.name))


def _make_factory(
    name: str,
    kind: str,
    dist: str,
    value: str,
    sys_path: tuple[str, ...],
    distribution: metadata.Distribution | None = None,
) -> Factory:
    module = value.partition(":")[0].strip()
    attr = value.partition(":")[2].strip().split("[")[0].strip()
    search = list(sys_path) + [p for p in sys.path if p]
    module_file = locate_module(module, search)
    if module_file is None and distribution is not None:
        module_file = _locate_in_distribution(module, distribution)
    line = find_definition_line(module_file, attr) if module_file else None
    return Factory(
        name=name,
        kind=kind,
        dist=dist,
        value=f"{module}:{attr}",
        file=str(module_file) if module_file else None,
        line=line,
        sys_path=sys_path,
    )


def _locate_in_distribution(module: str, distribution: metadata.Distribution) -> Path | None:
    suffixes = ("/".join(module.split(".")) + ".py", "/".join(module.split(".")) + "/__init__.py")
    for file in distribution.files or ():
        if str(file).replace("\\", "/").endswith(suffixes):
            located = Path(str(distribution.locate_file(file)))
            if located.is_file():
                return located.resolve()
    return None


_LOCATED: dict[tuple[str, tuple[str, ...]], Path | None] = {}


def locate_module(module: str, search_path: Sequence[str]) -> Path | None:
    """The source file of a dotted module name, found on disk without importing
    (memoised per run: a model zoo declares many factories per module)."""
    key = (module, tuple(search_path))
    if key not in _LOCATED:
        _LOCATED[key] = _locate_module(module, search_path)
    return _LOCATED[key]


def _locate_module(module: str, search_path: Sequence[str]) -> Path | None:
    parts = module.split(".")
    for entry in search_path:
        base = os.path.join(entry, *parts)
        for option in (base + ".py", os.path.join(base, "__init__.py")):
            if os.path.isfile(option):
                return Path(option).resolve()
    return None


# A top-level ``def``/``class``/assignment starts at column 0; scanning lines for them is
# ~100x faster than ast.parse, which matters for ``torchvet list`` on a model zoo (1000
# entry points over files of thousands of lines). ast stays the fallback for names the
# scan does not find (tuple unpacking, a name defined only inside ``if``/``try``).
_TOP_LEVEL = re.compile(
    r"^(?:(?:async[ \t]+)?def|class)[ \t]+([A-Za-z_]\w*)"
    r"|^([A-Za-z_]\w*)[ \t]*(?::[^=\n]*)?=(?!=)",
    re.MULTILINE,
)
_DEFINITIONS: dict[tuple[str, int, int], dict[str, int]] = {}


def _definitions(path: Path) -> tuple[dict[str, int], str] | None:
    """Top-level names of a source file -> first line (cached per file version)."""
    try:
        stat = path.stat()
        key = (str(path), stat.st_mtime_ns, stat.st_size)
        if key in _DEFINITIONS:
            return _DEFINITIONS[key], ""
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    found: dict[str, int] = {}
    for match in _TOP_LEVEL.finditer(text):
        name = match.group(1) or match.group(2)
        found.setdefault(name, text.count("\n", 0, match.start()) + 1)
    _DEFINITIONS[key] = found
    return found, text


def find_definition_line(path: Path, attr: str) -> int | None:
    """Line of ``def attr`` / ``class attr`` / ``attr = ...`` at a module's top level."""
    if not attr:
        return None
    head = attr.split(".")[0]
    indexed = _definitions(path)
    if indexed is None:
        return None
    names, text = indexed
    if head in names:
        return names[head]
    try:
        tree = ast.parse(text or path.read_text(encoding="utf-8", errors="replace"))
    except (OSError, SyntaxError, ValueError):
        return None
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            if node.name == head:
                return node.lineno
        elif isinstance(node, ast.Assign):
            for target in node.targets:
                if isinstance(target, ast.Name) and target.id == head:
                    return node.lineno
        elif (
            isinstance(node, ast.AnnAssign)
            and isinstance(node.target, ast.Name)
            and node.target.id == head
        ):
            return node.lineno
    return None


def _matches(name: str, patterns: Sequence[str]) -> bool:
    return any(fnmatch.fnmatchcase(name, p) for p in patterns)


def filter_factories(
    factories: Sequence[Factory],
    include: Sequence[str] = (),
    exclude: Sequence[str] = (),
) -> list[Factory]:
    """timm ``list_models``-style filtering by glob on the factory name."""
    selected = [f for f in factories if not include or _matches(f.name, include)]
    return [f for f in selected if not _matches(f.name, exclude)]


def split_patterns(values: Iterable[str]) -> list[str]:
    """Accept repeated options and comma-separated lists alike."""
    out: list[str] = []
    for value in values:
        out.extend(p.strip() for p in value.split(",") if p.strip())
    return out


def shard(factories: Sequence[Factory], index: int, total: int) -> list[Factory]:
    """Deterministic split of ``factories`` into ``total`` shards (1-based ``index``).

    Units are sorted by kind and name and dealt round-robin, so every unit lands in
    exactly one shard and shard sizes differ by at most one.
    """
    if total < 1 or not 1 <= index <= total:
        raise ValueError(f"shard {index}/{total}: expected 1 <= i <= n")
    ordered = sorted(factories, key=lambda f: (f.kind, f.name))
    return [f for position, f in enumerate(ordered) if position % total == index - 1]
