"""What counts as a model for ``torchvet init``: a module class users train, told apart
from the layers other models are built from, each choice explained in a word.

A class is proposed when the project shows it is a model: the package exports it
(``__init__`` re-exports, ``__all__``), a training script, a test, the README or a
module's ``__main__`` demo builds it, it derives from one of torch's whole models
(``nn.Transformer``, ``nn.LSTM``), or no other model uses it. A class built only inside
other models (a positional encoding, an attention block) is a part of them and is left
out. Calls are resolved through each file's imports, so a ``ViT`` built inside another
module's model makes that ``ViT`` a part, not every class of the name.

Where a script, test or README builds the class from literals only
(``ViT(image_size=256, patch_size=32, ...)``), that call is kept as an :class:`Example`:
``torchvet init`` writes it into a factory instead of a TODO, with the inputs the same
code feeds it (``torch.randn(1, 3, 256, 256)``) when it shows them. Reads sources with
``ast``; imports nothing.
"""

from __future__ import annotations

import ast
import contextlib
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

Key = tuple[str, str]  # (dotted module, class name)

TORCH_MODELS = {"Transformer", "TransformerEncoder", "TransformerDecoder", "LSTM", "GRU",
                "RNN"}
TENSOR_MAKERS = {"randn", "rand", "randint", "zeros", "ones", "full", "arange"}
TEST_DIRS = ("tests", "test")
_CODE_BLOCK = re.compile(r"```(?:python|py)\s*\n(.*?)```", re.S)


@dataclass
class Example:
    """A literal-only construction found in the project, to become a factory's body."""

    arguments: str  # the call's argument source: "image_size = 256, patch_size = 32"
    where: str  # "README.md", "tests/test_vit.py"
    inputs: str = ""  # "torch.randn(1, 3, 256, 256)" when the same code feeds it that


@dataclass
class Choice:
    """Whether a model class is proposed, and the one-word reason."""

    proposed: bool
    reason: str  # "exported", "trained in main.py", "part of VAT", ...
    example: Example | None = None


@dataclass
class Source:
    """One parsed file: a module of the project, a script, a test or a README block."""

    module: str  # dotted name ("" for README blocks and tests outside the packages)
    file: Path
    tree: ast.Module
    is_package: bool = False
    role: str = "module"  # "module" | "script" | "test" | "readme"


@dataclass
class _Evidence:
    reasons: list[str] = field(default_factory=list)
    parts_of: list[str] = field(default_factory=list)
    examples: list[Example] = field(default_factory=list)

    def example(self) -> Example | None:
        """The example to build from: one that shows its inputs first, then a test's,
        the README's, a script's."""
        rank = {"t": 0, "R": 1}
        return min(self.examples, default=None, key=lambda e: (
            not e.inputs, rank.get(_kind_of(e.where), 2)))


def readme_sources(root: Path) -> Iterator[Source]:
    """The python code blocks of the project's README, as one module."""
    for path in sorted(root.glob("README*")):
        if path.suffix.lower() not in (".md", ".markdown", ".rst", ""):
            continue
        blocks = []
        for block in _CODE_BLOCK.findall(path.read_text(encoding="utf-8", errors="replace")):
            try:
                ast.parse(block)
            except SyntaxError:
                continue
            blocks.append(block)
        if blocks:
            yield Source("", path, ast.parse("\n".join(blocks)), role="readme")


def test_sources(root: Path) -> Iterator[Source]:
    """The project's own tests (``tests/``, ``test_*.py``), read for the classes they build."""
    seen: set[Path] = set()
    for name in TEST_DIRS:
        base = root / name
        if base.is_dir():
            seen.update(p for p in base.rglob("*.py") if ".venv" not in p.parts)
    for path in sorted(seen):
        try:
            tree = ast.parse(path.read_text(encoding="utf-8", errors="replace"))
        except (SyntaxError, ValueError):
            continue
        yield Source("", path, tree, role="test")


def torch_model_base(node: ast.ClassDef, torch_names: set[str]) -> str:
    """``nn.Transformer`` when the class derives from one of torch's whole models."""
    for base in node.bases:
        if (isinstance(base, ast.Attribute) and base.attr in TORCH_MODELS
                and isinstance(base.value, (ast.Name, ast.Attribute))
                and _dotted(base.value).split(".")[-1] == "nn"):
            return f"nn.{base.attr}"
        if isinstance(base, ast.Name) and base.id in torch_names:
            return f"nn.{base.id}"
    return ""


def choose(sources: list[Source], models: Mapping[Key, ast.ClassDef], root: Path
           ) -> dict[Key, Choice]:
    """A :class:`Choice` for every model class in ``models``."""
    by_name: dict[str, list[Key]] = {}
    for key in models:
        by_name.setdefault(key[1], []).append(key)
    modules = {s.module: s for s in sources if s.module}
    evidence: dict[Key, _Evidence] = {key: _Evidence() for key in models}

    def resolve(source: Source, imports: Imports, name: str, own: bool, line: int
                ) -> list[Key]:
        head, _, attr = name.rpartition(".")
        if head:  # model.TransformerModel after `import model`
            target = _in_force(imports, f"{head}.", line)
            found = _follow(target[0], attr, modules, models) if target else None
            return [found] if found else []
        if own and (source.module, name) in models:
            return [(source.module, name)]
        target = _in_force(imports, name, line)
        if target is not None:
            found = _follow(target[0], target[1], modules, models)
            if found:
                return [found]
            if target[1] in by_name and len(by_name[target[1]]) == 1:
                return by_name[target[1]]
            return []
        candidates = by_name.get(name, [])
        return candidates if len(candidates) == 1 else []

    for source in sources:
        imports = _imports(source)
        own = source.role in ("module", "script")
        where = _where(source, root)
        if source.is_package:
            for name in _exports(source.tree):
                for key in resolve(source, imports, name, True, 1 << 30):
                    evidence[key].reasons.append("exported")
        for node in source.tree.body:
            if isinstance(node, ast.ClassDef) and (source.module, node.name) in models:
                for call in _calls(node):
                    for key in resolve(source, imports, _callee(call), own, call.lineno):
                        if key != (source.module, node.name):
                            evidence[key].parts_of.append(node.name)
        trained = _trains(source.tree)
        for scope in _scopes(source):
            for call, inputs in _built(scope):
                for key in resolve(source, imports, _callee(call), own, call.lineno):
                    ev = evidence[key]
                    ev.reasons.append(_reason(source, where, trained))
                    if _literal(call):
                        ev.examples.append(Example(_arguments(call), where, inputs))
    for (module, name), node in models.items():
        torch_names = _torch_nn_names(modules[module].tree) if module in modules else set()
        base = torch_model_base(node, torch_names)
        if base:
            evidence[(module, name)].reasons.append(f"a {base}")
    out: dict[Key, Choice] = {}
    for key, ev in evidence.items():
        if ev.reasons:
            out[key] = Choice(True, _first(ev.reasons), ev.example())
        elif ev.parts_of:
            out[key] = Choice(False, f"part of {ev.parts_of[0]}")
        else:
            out[key] = Choice(True, "standalone")
    return out


_ORDER = ("exported", "trained", "tested", "README", "built", "a nn.")


def _first(reasons: list[str]) -> str:
    return min(reasons, key=lambda r: next((i for i, p in enumerate(_ORDER)
                                            if r.startswith(p)), len(_ORDER)))


def _reason(source: Source, where: str, trained: bool) -> str:
    name = Path(where).name
    if source.role == "readme":
        return "README"
    if source.role == "test":
        return f"tested in {name}"
    return f"trained in {name}" if trained else f"built in {name}"


def _where(source: Source, root: Path) -> str:
    try:
        return source.file.relative_to(root).as_posix()
    except ValueError:
        return source.file.name


def _dotted(node: ast.expr) -> str:
    if isinstance(node, ast.Attribute):
        return f"{_dotted(node.value)}.{node.attr}"
    if isinstance(node, ast.Name):
        return node.id
    return ""


def _callee(call: ast.Call) -> str:
    """The called name as the file refers to it: ``ViT`` or ``model.TransformerModel``."""
    return _dotted(call.func)


def _calls(node: ast.AST) -> Iterator[ast.Call]:
    return (n for n in ast.walk(node) if isinstance(n, ast.Call))


Imports = dict[str, list[tuple[int, tuple[str, str]]]]


def _imports(source: Source) -> Imports:
    """Local name -> [(line, (module, attribute))] for ``from m import a as b``, and
    ``alias.`` -> [(line, (m, ""))] for ``import m as alias``; a README's blocks import
    the same name from several modules, so the import in force is the last before use."""
    out: Imports = {}
    package = source.module if source.is_package else source.module.rpartition(".")[0]
    for node in ast.walk(source.tree):
        if isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".") if package else []
                parts = parts[: len(parts) - (node.level - 1)] if node.level > 1 else parts
                base = ".".join([*parts, node.module] if node.module else parts)
            for alias in node.names:
                out.setdefault(alias.asname or alias.name, []).append(
                    (node.lineno, (base, alias.name)))
        elif isinstance(node, ast.Import):
            for alias in node.names:
                out.setdefault(f"{alias.asname or alias.name}.", []).append(
                    (node.lineno, (alias.name, "")))
    for found in out.values():
        found.sort()
    return out


def _in_force(imports: Imports, name: str, line: int) -> tuple[str, str] | None:
    found = imports.get(name, [])
    before = [target for at, target in found if at <= line]
    return before[-1] if before else (found[0][1] if found else None)


def _follow(module: str, attr: str, modules: Mapping[str, Source],
            models: Mapping[Key, ast.ClassDef], depth: int = 0) -> Key | None:
    """The class ``from module import attr`` names, through package re-exports."""
    if (module, attr) in models:
        return (module, attr)
    if module in modules and depth < 4:
        target = _in_force(_imports(modules[module]), attr, 1 << 30)
        if target is not None:
            return _follow(target[0], target[1], modules, models, depth + 1)
    return None


def _exports(tree: ast.Module) -> set[str]:
    """Names a package's ``__init__`` re-exports or lists in ``__all__``."""
    names: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.ImportFrom):
            names.update(a.asname or a.name for a in node.names if a.name != "*")
        elif isinstance(node, ast.Assign) and any(
                isinstance(t, ast.Name) and t.id == "__all__" for t in node.targets):
            with contextlib.suppress(ValueError, TypeError, SyntaxError):
                names.update(str(v) for v in ast.literal_eval(node.value))
    return names


def _torch_nn_names(tree: ast.Module) -> set[str]:
    return {a.asname or a.name for n in tree.body if isinstance(n, ast.ImportFrom)
            and n.module in ("torch.nn", "torch.nn.modules") for a in n.names
            if a.name in TORCH_MODELS}


def _trains(tree: ast.Module) -> bool:
    """Whether the file runs a training step (``loss.backward()``)."""
    return any(isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute)
               and n.func.attr == "backward" for n in ast.walk(tree))


def _is_main_guard(node: ast.stmt) -> bool:
    return (isinstance(node, ast.If) and isinstance(node.test, ast.Compare)
            and _dotted(node.test.left) == "__name__")


def _scopes(source: Source) -> Iterator[list[ast.stmt]]:
    """Statement lists whose calls build models for use (not as parts): a script's or
    test's top level and functions, a package module's ``__main__`` demo."""
    tree = source.tree
    if source.role == "module":
        for stmt in tree.body:
            if isinstance(stmt, ast.If) and _is_main_guard(stmt):
                yield stmt.body
        return
    top = [n for n in tree.body if not isinstance(n, (ast.ClassDef, ast.FunctionDef,
                                                      ast.AsyncFunctionDef))]
    yield top
    # a script's functions (main, train); a test's, methods of test classes included
    nodes: Iterable[ast.AST] = ast.walk(tree) if source.role != "script" else tree.body
    for node in nodes:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            yield node.body


def _statements(body: Iterable[ast.stmt]) -> Iterator[ast.AST]:
    """Every node of ``body`` except what nested functions and classes hold."""
    stack: list[ast.AST] = list(reversed(list(body)))
    while stack:
        node = stack.pop()
        yield node
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef,
                             ast.Lambda)):
            continue
        stack.extend(reversed(list(ast.iter_child_nodes(node))))


def _built(body: list[ast.stmt]) -> Iterator[tuple[ast.Call, str]]:
    """(call, inputs source) for every call in ``body``; the inputs are the literal
    tensors the scope feeds the variable the call was assigned to, before that variable
    is assigned again."""
    nodes = list(_statements(body))
    assigns = sorted(((n.lineno, t.id, n.value) for n in nodes if isinstance(n, ast.Assign)
                      for t in n.targets if isinstance(t, ast.Name)), key=lambda a: a[0])
    calls = [n for n in nodes if isinstance(n, ast.Call)]

    def tensor(node: ast.expr, line: int) -> ast.Call | None:
        if isinstance(node, ast.Call) and _tensor_literal(node):
            return node
        if isinstance(node, ast.Name):
            value = next((v for at, name, v in reversed(assigns)
                          if name == node.id and at <= line), None)
            if isinstance(value, ast.Call) and _tensor_literal(value):
                return value
        return None

    for call in calls:
        var = next((name for _, name, value in assigns if value is call), "")
        until = next((at for at, name, value in assigns
                      if name == var and at > call.lineno), 1 << 30)
        inputs = ""
        for use in sorted(calls, key=lambda c: c.lineno):
            if not (var and isinstance(use.func, ast.Name) and use.func.id == var
                    and call.lineno < use.lineno < until and use.args and not use.keywords):
                continue
            args = [tensor(a, use.lineno) for a in use.args]
            if all(a is not None for a in args):
                parts = [ast.unparse(a) for a in args if a is not None]
                inputs = parts[0] if len(parts) == 1 else f"({', '.join(parts)})"
            break
        yield call, inputs


def _tensor_literal(call: ast.Call) -> bool:
    """``torch.randn(1, 3, 256, 256)``: a tensor made from literals only."""
    return (isinstance(call.func, ast.Attribute) and call.func.attr in TENSOR_MAKERS
            and _dotted(call.func.value) == "torch" and _literal(call))


def _literal(call: ast.Call) -> bool:
    """Every argument is a literal (numbers, strings, tuples, lists, dicts of them)."""
    values = [*call.args, *(k.value for k in call.keywords)]
    if any(isinstance(a, ast.Starred) for a in call.args) or any(
            k.arg is None for k in call.keywords):
        return False
    for value in values:
        if isinstance(value, ast.Attribute) and _dotted(value).startswith("torch."):
            continue  # dtype=torch.long
        try:
            ast.literal_eval(value)
        except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
            return False
    return True


def _kind_of(where: str) -> str:
    name = Path(where).name
    return "R" if name.startswith("README") else "t" if name.startswith("test") else ""


def _arguments(call: ast.Call) -> str:
    parts = [ast.unparse(a) for a in call.args]
    parts += [f"{k.arg}={ast.unparse(k.value)}" for k in call.keywords]
    return ", ".join(parts)
