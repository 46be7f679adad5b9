"""Point a verdict at a source line: the culprit's file and line inside the project.

- an exception: the innermost traceback frame in a project file;
- a parameter or submodule: the line that assigns it (``self.encoder = ...``) in the
  deepest project class along its dotted path;
- otherwise the model's class, else the factory.
"""

from __future__ import annotations

import ast
import functools
import inspect
import re
import textwrap
import traceback
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from ..project.paths import report_path

Location = tuple[str, int]

_SETTERS = {"register_buffer", "register_parameter", "add_module", "register_module"}
_TRACE_LINE = re.compile(r'File "([^"]+)", line (\d+)')


class Locator:
    """Maps exceptions, parameters and classes to (relative file, line)."""

    def __init__(self, project_dirs: Sequence[str | Path], report_root: str | Path) -> None:
        self.project_dirs = [Path(p).resolve() for p in project_dirs if p]
        self.report_root = Path(report_root).resolve()
        self._own_dir = Path(__file__).resolve().parent

    # -- files -----------------------------------------------------------------
    @functools.lru_cache(maxsize=4096)  # noqa: B019 - one locator per worker process
    def is_project_file(self, filename: str) -> bool:
        """Inside a project directory, and not in an environment kept inside it (.venv)."""
        if not filename or filename.startswith("<"):
            return False
        path = Path(filename).resolve()
        if self._own_dir in path.parents:
            return False
        for directory in self.project_dirs:
            try:
                relative = path.relative_to(directory)
            except ValueError:
                continue
            if not {"site-packages", "dist-packages"} & set(relative.parts):
                return True
        return False

    def relative(self, filename: str) -> str:
        return report_path(filename, self.report_root)

    def _loc(self, filename: str, line: int) -> Location:
        return self.relative(filename), int(line)

    # -- exceptions ------------------------------------------------------------
    def for_exception(self, exc: BaseException) -> Location | None:
        frames = traceback.extract_tb(exc.__traceback__)
        for frame in reversed(frames):
            if self.is_project_file(frame.filename) and frame.lineno:
                return self._loc(frame.filename, frame.lineno)
        cause = exc.__cause__ or exc.__context__
        if cause is not None and cause is not exc:
            return self.for_exception(cause)
        return None

    def in_text(self, text: str) -> Location | None:
        """Innermost project frame in a printed traceback (anomaly mode's forward trace)."""
        found = None
        for filename, line in _TRACE_LINE.findall(text):
            if self.is_project_file(filename):
                found = self._loc(filename, int(line))
        return found

    # -- classes and attributes --------------------------------------------------
    def for_class(self, cls: type) -> Location | None:
        try:
            filename = inspect.getsourcefile(cls)
            _, line = inspect.getsourcelines(cls)
        except (OSError, TypeError):
            return None
        if filename and self.is_project_file(filename):
            return self._loc(filename, max(line, 1))
        return None

    def for_function(self, fn: Any) -> Location | None:
        """Definition line of a project function (a spec's step, loss or optimizer)."""
        fn = getattr(fn, "__func__", fn)
        try:
            filename = inspect.getsourcefile(fn)
            _, line = inspect.getsourcelines(fn)
        except (OSError, TypeError):
            return None
        if filename and self.is_project_file(filename):
            return self._loc(filename, max(line, 1))
        return None

    def for_object(self, obj: Any) -> Location | None:
        for cls in type(obj).__mro__:
            found = self.for_class(cls)
            if found:
                return found
        return None

    def for_attribute(self, owner: Any, attr: str) -> Location | None:
        """The line in ``owner``'s (project) class hierarchy that assigns ``self.attr``."""
        for cls in type(owner).__mro__:
            found = _assignment_in_class(cls, attr)
            if found and self.is_project_file(found[0]):
                return self._loc(*found)
        return None

    def for_path(self, root: Any, dotted: str) -> Location | None:
        """Deepest project-class assignment along ``dotted`` (``blocks.3.attn.qkv``)."""
        best = None
        owner = root
        for part in dotted.split(".") if dotted else []:
            found = self.for_attribute(owner, part)
            if found:
                best = found
            child = _child(owner, part)
            if child is None:
                break
            owner = child
        return best

    def for_parameters(self, model: Any, names: Iterable[str]) -> Location | None:
        """Location for a group of parameter names: their common module's assignment."""
        names = list(names)
        if not names:
            return None
        prefix = common_module_prefix(names)
        found = self.for_path(model, prefix) if prefix else None
        if found is None and len(names) >= 1:
            found = self.for_path(model, names[0])
        return found or self.for_object(model)


def _child(owner: Any, part: str) -> Any:
    modules = getattr(owner, "_modules", None)
    if isinstance(modules, dict) and part in modules:
        return modules[part]
    return getattr(owner, part, None) if not part.isdigit() else None


def common_module_prefix(names: Sequence[str]) -> str:
    """``encoder.0`` for ``encoder.0.weight`` and ``encoder.0.bias``; for one parameter,
    its owning module path plus the parameter name."""
    split = [n.split(".") for n in names]
    if len(split) == 1:
        return names[0]
    common: list[str] = []
    for parts in zip(*split, strict=False):
        if all(p == parts[0] for p in parts):
            common.append(parts[0])
        else:
            break
    return ".".join(common)


@functools.lru_cache(maxsize=2048)
def _class_assignments(cls: type) -> dict[str, tuple[str, int]]:
    try:
        filename = inspect.getsourcefile(cls)
        lines, start = inspect.getsourcelines(cls)
    except (OSError, TypeError):
        return {}
    if not filename:
        return {}
    try:
        tree = ast.parse(textwrap.dedent("".join(lines)))
    except SyntaxError:
        return {}
    found: dict[str, tuple[str, int]] = {}

    def note(name: str, node: ast.AST) -> None:
        found.setdefault(name, (filename, start + getattr(node, "lineno", 1) - 1))

    for node in ast.walk(tree):
        targets: list[ast.expr] = []
        if isinstance(node, ast.Assign):
            targets = list(node.targets)
        elif isinstance(node, (ast.AnnAssign, ast.AugAssign)):
            targets = [node.target]
        for target in targets:
            for element in ast.walk(target):
                if (
                    isinstance(element, ast.Attribute)
                    and isinstance(element.value, ast.Name)
                    and element.value.id == "self"
                ):
                    note(element.attr, node)
        if isinstance(node, ast.Call):
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            position = 1 if name == "setattr" else 0 if name in _SETTERS else None
            if position is not None and len(node.args) > position:
                key = node.args[position]
                if isinstance(key, ast.Constant) and isinstance(key.value, str):
                    note(key.value, node)
    return found


def _assignment_in_class(cls: type, attr: str) -> tuple[str, int] | None:
    if cls is object or cls.__module__.startswith(("torch.", "builtins")):
        return None
    return _class_assignments(cls).get(attr)
