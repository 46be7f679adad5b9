"""``torchvet init``'s reading of a project: the models and datasets it could check,
found by static analysis (``ast``), never by importing anything.

Candidates are zero-argument functions that return a model (a call of a module class,
a ``{"model": ...}`` dict, a ``Spec``, or an annotated ``nn.Module``) or a dataset, and
``nn.Module`` / ``Dataset`` subclasses that no such function builds and no other module
class uses as a part (a ``Block`` inside a ``Net`` is a layer, not a model). A class
that needs constructor arguments gets a factory skeleton to fill in instead.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Collection, Iterator
from dataclasses import dataclass, field
from pathlib import Path

MODULE_BASES = {"Module", "LightningModule", "PreTrainedModel"}
DATASET_BASES = {"Dataset", "IterableDataset", "TensorDataset"}
MODEL_BUILDERS = {"create_model", "from_config"}  # timm.create_model, AutoModel.from_config
SKIP_DIRS = {"tests", "test", "docs", "build", "dist", "site-packages", "node_modules",
             "venv", "__pycache__"}
FACTORY_PREFIXES = ("make_", "build_", "create_", "get_", "new_")
SKELETON_MODULE = "torchvet_factories"


@dataclass
class ClassInfo:
    name: str
    module: str
    file: Path
    line: int
    bases: list[str]
    needs_args: list[str]  # constructor parameters without a default
    has_init: bool
    kind: str = ""  # "model" | "dataset" once known


@dataclass
class Candidate:
    """One entry the stanza will propose (``value`` = ``module:attr``)."""

    name: str
    kind: str  # "model" | "dataset"
    value: str
    why: str
    todo: str = ""  # set for skeleton factories: what the user must fill in


@dataclass
class Findings:
    candidates: list[Candidate] = field(default_factory=list)
    skeleton: dict[str, list[ClassInfo]] = field(default_factory=dict)  # package -> classes
    scanned: int = 0


def source_roots(root: Path) -> list[Path]:
    """Where the project's importable code lives: ``src/`` when there is one, else the
    root itself."""
    src = root / "src"
    return [src] if src.is_dir() else [root]


def python_files(base: Path) -> Iterator[tuple[str, Path]]:
    """(dotted module, file) of every module in the packages under ``base`` (and its
    top-level modules), tests and tooling left out."""
    for path in sorted(base.iterdir()):
        if path.name.startswith((".", "_")) or path.name in SKIP_DIRS:
            continue
        if path.is_file() and path.suffix == ".py" and not _is_tooling(path):
            yield path.stem, path
        elif path.is_dir() and (path / "__init__.py").is_file():
            yield from _package_files(path, path.name)


def _package_files(directory: Path, dotted: str) -> Iterator[tuple[str, Path]]:
    for path in sorted(directory.iterdir()):
        if path.name.startswith(".") or path.name in SKIP_DIRS:
            continue
        if path.is_dir() and (path / "__init__.py").is_file():
            yield from _package_files(path, f"{dotted}.{path.name}")
        elif path.suffix == ".py" and not _is_tooling(path):
            module = dotted if path.stem == "__init__" else f"{dotted}.{path.stem}"
            yield module, path


def _is_tooling(path: Path) -> bool:
    name = path.name
    return (name.startswith("test_") or name.endswith("_test.py") or
            name in ("conftest.py", "setup.py", "noxfile.py", f"{SKELETON_MODULE}.py"))


def _last_name(node: ast.expr) -> str:
    if isinstance(node, ast.Attribute):
        return node.attr
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Subscript):  # Generic[...] / Dataset[Tensor]
        return _last_name(node.value)
    return ""


def _required(args: ast.arguments, skip_self: bool) -> list[str]:
    positional = [*args.posonlyargs, *args.args][1 if skip_self else 0:]
    required = positional[: len(positional) - len(args.defaults)]
    required += [a for a, d in zip(args.kwonlyargs, args.kw_defaults, strict=True)
                 if d is None]
    return [a.arg for a in required]


class _Module:
    """One parsed source file."""

    def __init__(self, dotted: str, file: Path, tree: ast.Module) -> None:
        self.dotted, self.file, self.tree = dotted, file, tree
        self.classes = [self._class(node) for node in tree.body
                        if isinstance(node, ast.ClassDef)]
        self.functions = [node for node in tree.body if isinstance(node, ast.FunctionDef)]

    def _class(self, node: ast.ClassDef) -> ClassInfo:
        init = next((n for n in node.body
                     if isinstance(n, ast.FunctionDef) and n.name == "__init__"), None)
        return ClassInfo(
            name=node.name, module=self.dotted, file=self.file, line=node.lineno,
            bases=[_last_name(b) for b in node.bases],
            needs_args=_required(init.args, skip_self=True) if init else [],
            has_init=init is not None,
        )


def analyse(root: Path, declared: Collection[str] = ()) -> Findings:
    """Candidates for the project at ``root``; ``declared`` holds entry-point values
    already in its pyproject (left out)."""
    modules: list[_Module] = []
    for base in source_roots(root):
        for dotted, file in python_files(base):
            try:
                tree = ast.parse(file.read_text(encoding="utf-8", errors="replace"))
            except (SyntaxError, ValueError):
                continue
            modules.append(_Module(dotted, file, tree))
    classes = [c for m in modules for c in m.classes]
    _classify(classes)
    by_name = {c.name: c for c in classes if c.kind}
    findings = Findings(scanned=len(modules))
    built: set[str] = set()
    for module in modules:
        for func in module.functions:
            kind, names = _factory_kind(func, by_name)
            built |= names
            if kind and func.name[0] != "_" and not _required(func.args, skip_self=False):
                value = f"{module.dotted}:{func.name}"
                findings.candidates.append(Candidate(
                    _entry_name(func.name), kind, value, f"{module.file.name}:{func.lineno}"))
    parts = _parts(modules, by_name)
    for cls in classes:
        if not cls.kind or cls.name in built or cls.name in parts or cls.name[0] == "_":
            continue
        if re.match(r"(Base|Abstract)[A-Z]", cls.name):
            continue
        needs = _needs_args(cls, by_name)
        if not needs:
            findings.candidates.append(Candidate(
                _snake(cls.name), cls.kind, f"{cls.module}:{cls.name}",
                f"{cls.file.name}:{cls.line}"))
        elif cls.kind == "model":
            package = cls.module.split(".")[0] if "." in cls.module else ""
            findings.skeleton.setdefault(package, []).append(cls)
    findings.candidates = _unique([c for c in findings.candidates if c.value not in declared])
    return findings


def _classify(classes: list[ClassInfo]) -> None:
    """Mark module and dataset classes, following project subclasses to a fixpoint."""
    changed = True
    while changed:
        changed = False
        kinds = {c.name: c.kind for c in classes if c.kind}
        for cls in classes:
            if cls.kind:
                continue
            for base in cls.bases:
                kind = ("model" if base in MODULE_BASES else
                        "dataset" if base in DATASET_BASES else kinds.get(base, ""))
                if kind:
                    cls.kind, changed = kind, True
                    break


def _needs_args(cls: ClassInfo, by_name: dict[str, ClassInfo]) -> list[str]:
    """Constructor arguments without defaults, inherited from a project base class when
    the class defines no ``__init__`` of its own."""
    seen = set()
    while not cls.has_init and cls.name not in seen:
        seen.add(cls.name)
        parent = next((by_name[b] for b in cls.bases if b in by_name), None)
        if parent is None:
            return []
        cls = parent
    return cls.needs_args


def _factory_kind(func: ast.FunctionDef, classes: dict[str, ClassInfo]
                  ) -> tuple[str, set[str]]:
    """("model" | "dataset" | "", class names the function builds)."""
    built = {_last_name(n.func) for n in ast.walk(func) if isinstance(n, ast.Call)}
    built &= set(classes)
    assigned = {t.id: n.value for n in ast.walk(func) if isinstance(n, ast.Assign)
                for t in n.targets if isinstance(t, ast.Name)}
    kinds = [_value_kind(n.value, classes, assigned) for n in ast.walk(func)
             if isinstance(n, ast.Return) and n.value is not None]
    annotated = _last_name(func.returns) if func.returns is not None else ""
    declared = classes[annotated].kind if annotated in classes else ""
    if annotated in MODULE_BASES:
        declared = "model"
    elif annotated in DATASET_BASES | {"DataLoader"}:
        declared = "dataset"
    kinds.append(declared)
    kind = "model" if "model" in kinds else "dataset" if "dataset" in kinds else ""
    return kind, built


def _value_kind(value: ast.expr, classes: dict[str, ClassInfo],
                assigned: dict[str, ast.expr]) -> str:
    if isinstance(value, ast.Name) and value.id in assigned:
        value = assigned[value.id]
    if isinstance(value, ast.Dict):
        keys = {k.value for k in value.keys if isinstance(k, ast.Constant)}
        return "model" if "model" in keys else "dataset" if "dataset" in keys else ""
    if isinstance(value, ast.Call):
        name = _last_name(value.func)
        if name in classes:
            return classes[name].kind
        if name in MODEL_BUILDERS or name == "Spec":
            return "model"
        if name == "DataLoader":
            return "dataset"
    return ""


def _parts(modules: list[_Module], classes: dict[str, ClassInfo]) -> set[str]:
    """Module classes instantiated inside another module class: layers, not models."""
    parts = set()
    for module in modules:
        for node in module.tree.body:
            if isinstance(node, ast.ClassDef) and node.name in classes:
                for call in ast.walk(node):
                    if isinstance(call, ast.Call):
                        name = _last_name(call.func)
                        if name in classes and name != node.name:
                            parts.add(name)
    return parts


def _entry_name(function: str) -> str:
    for prefix in FACTORY_PREFIXES:
        if function.startswith(prefix) and len(function) > len(prefix):
            return function[len(prefix):]
    return function


def _snake(name: str) -> str:
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", "_", name).lower()


def _unique(candidates: list[Candidate]) -> list[Candidate]:
    """Entry names are unique per kind: a clash is qualified by the module's last part."""
    seen: dict[tuple[str, str], int] = {}
    for c in candidates:
        seen[(c.kind, c.name)] = seen.get((c.kind, c.name), 0) + 1
    out = []
    for c in candidates:
        if seen[(c.kind, c.name)] > 1:
            c.name = f"{c.value.partition(':')[0].rpartition('.')[2]}_{c.name}"
        out.append(c)
    return out


def skeleton_source(classes: list[ClassInfo]) -> str:
    """A factories module for the classes that need arguments: one TODO each."""
    imports = sorted({f"from {c.module} import {c.name}" for c in classes})
    lines = [
        '"""Factories for torchvet (written by `torchvet init`): fill in each TODO, then',
        'uncomment its entry under [project.entry-points."torchvet.models"]."""',
        "",
        "from __future__ import annotations",
        "",
        *imports,
        "",
    ]
    for cls in classes:
        args = ", ".join(cls.needs_args)
        lines += [
            "",
            f"def make_{_snake(cls.name)}() -> {cls.name}:",
            f"    # TODO: build {cls.name} with real arguments ({args}); see the README",
            "    # for declaring its inputs, loss or dataset in a dict spec",
            f'    raise NotImplementedError("fill in make_{_snake(cls.name)} in '
            f'{SKELETON_MODULE}.py")',
            "",
        ]
    return "\n".join(lines).rstrip("\n") + "\n"


def skeleton_candidates(package: str, classes: list[ClassInfo]) -> list[Candidate]:
    module = f"{package}.{SKELETON_MODULE}" if package else SKELETON_MODULE
    return [Candidate(_snake(c.name), "model", f"{module}:make_{_snake(c.name)}",
                      f"{c.file.name}:{c.line}", todo=", ".join(c.needs_args))
            for c in classes]
