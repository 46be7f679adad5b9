"""``torchvet init``'s reading of a project: the models and datasets it could check,
found by static analysis (``ast``), never by importing anything.

Candidates are zero-argument functions that return a model (a call of a module class,
a ``{"model": ...}`` dict, a ``Spec``, or an annotated ``nn.Module``) or a dataset, and
``nn.Module`` / ``Dataset`` subclasses that no such function builds and that are models
rather than layers (:mod:`.model_choice` decides, with a one-word reason). A model class
that needs constructor arguments gets a factory in the skeleton module instead: built
as the project's own README, test or script builds it from literals, else a TODO.
Entry names come from :mod:`.naming`: snake case with acronyms kept, unique.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Collection, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from .model_choice import (
    TORCH_MODELS,
    Choice,
    Example,
    Source,
    choose,
    readme_sources,
    test_sources,
)
from .naming import class_entry_name, function_entry_name, unique_names

MODULE_BASES = {"Module", "LightningModule", "PreTrainedModel", *TORCH_MODELS}
DATASET_BASES = {"Dataset", "IterableDataset", "TensorDataset"}
MODEL_BUILDERS = {"create_model", "from_config"}  # timm.create_model, AutoModel.from_config
SKIP_DIRS = {"tests", "test", "docs", "build", "dist", "site-packages", "node_modules",
             "venv", "__pycache__"}
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
    forwards: list[str] = field(default_factory=list)  # "*args" / "**kwargs" it passes on
    to_super: bool = True  # ... to its base class's __init__ only
    node: ast.ClassDef | None = field(default=None, repr=False)
    entry: str = ""  # its entry name, unique in the proposal
    reason: str = ""  # why it is proposed (or left out): "exported", "part of ViT"
    example: Example | None = None  # how the project builds it, for its factory
    error: str = ""  # what `init --check` met building it (it goes to the skeleton)


@dataclass
class Candidate:
    """One entry the stanza will propose (``value`` = ``module:attr``)."""

    name: str
    kind: str  # "model" | "dataset"
    value: str
    why: str
    todo: str = ""  # set for skeleton factories: what the user must fill in
    reason: str = ""  # the one word shown beside the entry: "exported", "trained in main.py"
    error: str = ""  # what `init --check` met: the entry is commented out with it


@dataclass
class Findings:
    candidates: list[Candidate] = field(default_factory=list)
    skeleton: dict[str, list[ClassInfo]] = field(default_factory=dict)  # package -> classes
    scanned: int = 0
    left_out: list[ClassInfo] = field(default_factory=list)  # layers, each with its reason
    classes: dict[str, ClassInfo] = field(default_factory=dict)  # entry value -> its class


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
        self.is_package = file.name == "__init__.py"
        self.classes = [self._class(node) for node in tree.body
                        if isinstance(node, ast.ClassDef)]
        self.functions = [node for node in tree.body if isinstance(node, ast.FunctionDef)]

    def _class(self, node: ast.ClassDef) -> ClassInfo:
        init = next((n for n in node.body
                     if isinstance(n, ast.FunctionDef) and n.name == "__init__"), None)
        forwards = []
        to_super = False
        if init is not None:
            passed = [n for n in ast.walk(init) if isinstance(n, ast.Call)]
            to_super = all(_last_name(c.func) == "__init__" for c in passed
                           if any(isinstance(a, ast.Starred) for a in c.args)
                           or any(k.arg is None for k in c.keywords))
            if init.args.vararg and any(isinstance(a, ast.Starred) for c in passed
                                        for a in c.args):
                forwards.append(f"*{init.args.vararg.arg}")
            if init.args.kwarg and any(k.arg is None for c in passed for k in c.keywords):
                forwards.append(f"**{init.args.kwarg.arg}")
        return ClassInfo(
            name=node.name, module=self.dotted, file=self.file, line=node.lineno,
            bases=[_last_name(b) for b in node.bases],
            needs_args=_required(init.args, skip_self=True) if init else [],
            has_init=init is not None, forwards=forwards, node=node, to_super=to_super,
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
                    function_entry_name(func.name), kind, value,
                    f"{module.file.name}:{func.lineno}", reason="factory"))
    choices = _choices(root, modules, classes)
    for cls in classes:
        if not cls.kind or cls.name in built or cls.name[0] == "_":
            continue
        if re.match(r"(Base|Abstract)[A-Z]", cls.name):
            continue
        choice = choices.get((cls.module, cls.name), Choice(True, "standalone"))
        cls.reason, cls.example = choice.reason, choice.example
        if not choice.proposed:
            findings.left_out.append(cls)
            continue
        needs = _needs_args(cls, by_name)
        cls.entry = class_entry_name(cls.name)
        if not needs:
            findings.classes[f"{cls.module}:{cls.name}"] = cls
            findings.candidates.append(Candidate(
                cls.entry, cls.kind, f"{cls.module}:{cls.name}",
                f"{cls.file.name}:{cls.line}", reason=choice.reason))
        elif cls.kind == "model":
            cls.needs_args = needs
            package = cls.module.split(".")[0] if "." in cls.module else ""
            findings.skeleton.setdefault(package, []).append(cls)
    findings.candidates = [c for c in findings.candidates if c.value not in declared]
    _name_uniquely(findings)
    return findings


def _choices(root: Path, modules: list[_Module], classes: list[ClassInfo]
             ) -> dict[tuple[str, str], Choice]:
    """:func:`.model_choice.choose` over the modules, the tests and the README."""
    sources = [Source(m.dotted, m.file, m.tree, m.is_package,
                      "module" if "." in m.dotted or m.is_package else "script")
               for m in modules]
    sources += [*test_sources(root), *readme_sources(root)]
    models = {(c.module, c.name): c.node for c in classes
              if c.kind == "model" and c.node is not None}
    return choose(sources, models, root)


def _name_uniquely(findings: Findings) -> None:
    """Unique entry names per kind across the entries and the skeleton's factories."""
    skeleton = [c for group in findings.skeleton.values() for c in group]
    for kind in ("model", "dataset"):
        entries = [c for c in findings.candidates if c.kind == kind]
        classes = [c for c in skeleton if c.kind == kind]
        names = unique_names([(c.name, c.value.partition(":")[0]) for c in entries]
                             + [(c.entry, c.module) for c in classes])
        for entry, name in zip(entries, names[:len(entries)], strict=True):
            entry.name = name
        for cls, name in zip(classes, names[len(entries):], strict=True):
            cls.entry = name


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
    needs: list[str] = []
    while cls.name not in seen:
        seen.add(cls.name)
        parent = next((by_name[b] for b in cls.bases if b in by_name), None)
        if cls.has_init:
            needs += cls.needs_args
            if not cls.forwards:
                return needs
            if not cls.to_super:  # passed on to a part: what it needs, we cannot tell
                return needs + cls.forwards
            if parent is None:  # passed on to a base class we cannot read
                known = all(b in MODULE_BASES | DATASET_BASES for b in cls.bases)
                return needs if known else needs + cls.forwards
        if parent is None:
            return needs
        cls = parent
    return needs


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


def skeleton_source(classes: list[ClassInfo]) -> str:
    """A factories module for the classes that need arguments: one function each, built
    as the project's example builds it, else a TODO (with the error the check met).
    Each function imports its own class: two classes of one name never hide each other,
    and a module needing an optional dependency breaks only its own factory."""
    needs_torch = any(c.example and c.example.inputs and not c.error for c in classes)
    lines = [
        '"""Factories for torchvet (written by `torchvet init`): fill in each TODO, then',
        'uncomment its entry under [project.entry-points."torchvet.models"]."""',
        "",
        "from __future__ import annotations",
        *(["", "import torch"] if needs_torch else []),
    ]
    for cls in classes:
        func = f"make_{cls.entry}"
        lines += ["", "", f"def {func}():", f"    from {cls.module} import {cls.name}", ""]
        example = cls.example
        if example is not None and not cls.error:
            lines.append(f"    # built as in {example.where}")
            if example.inputs:
                lines.append(f"    return {{\"model\": {cls.name}({example.arguments}), "
                             f"\"inputs\": {example.inputs}}}")
            else:
                lines.append(f"    return {cls.name}({example.arguments})")
            continue
        if cls.error:
            lines.append(f"    # torchvet init --check: {cls.error}")
        args = ", ".join(cls.needs_args) or "whatever it needs"
        lines += [
            f"    # TODO: build {cls.name} with real arguments ({args}); see the README",
            "    # for declaring its inputs, loss or dataset in a dict spec",
            f'    raise NotImplementedError("fill in {func} in {SKELETON_MODULE}.py")',
        ]
    return "\n".join(lines).rstrip("\n") + "\n"


def skeleton_module(package: str) -> str:
    return f"{package}.{SKELETON_MODULE}" if package else SKELETON_MODULE


def skeleton_candidates(package: str, classes: list[ClassInfo]) -> list[Candidate]:
    """The stanza's entries for the skeleton's factories: a TODO (commented out) unless
    the factory is built from the project's example."""
    module = skeleton_module(package)
    return [Candidate(c.entry, "model", f"{module}:make_{c.entry}",
                      f"{c.file.name}:{c.line}",
                      todo="" if c.example is not None and not c.error else
                      (", ".join(c.needs_args) or "arguments"),
                      reason=c.reason, error=c.error)
            for c in classes]
