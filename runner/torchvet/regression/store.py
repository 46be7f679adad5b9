"""Snapshot files: what a unit looked like, one small JSON file per unit in the project
(``.torchvet/snapshots/<model>.json``, ``.torchvet/snapshots/datasets/<dataset>.json``).

``torchvet snapshot`` writes them and the ``regression.*`` checks compare against them.
They are meant to be committed and reviewed, so the layout is for diffs: one line per
output leaf, per state_dict module and per measured output, keys sorted, numbers rounded
to what a comparison can use. The worker computes a snapshot (:mod:`.compute`); this side
only lays it out, reads it back and says where it lives. A unit's :class:`Baseline` (what
it is compared with) is read from such files too. No torch here.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

from ..errors import UsageError
from .diff import DEFAULT_COST_SHARE, natural_order

FORMAT = 1  # "torchvet_snapshot" of the files this torchvet writes and reads
DIRECTORY = Path(".torchvet") / "snapshots"
CREATE_HINT = "create it with `torchvet snapshot`"
UPDATE_HINT = "if intended, accept it with `torchvet snapshot --update`"
# Sections laid out one entry per line; deeper values (a module's tensors, a leaf's
# digest) stay on their entry's line.
_EXPANDED_DEPTH = 3
_EXPANDED_DEEPER = ("outputs", "inputs", "modules")


class SnapshotError(UsageError):
    """A snapshot file that cannot be used (not JSON, from a newer torchvet, another unit)."""


@dataclass(frozen=True)
class Baseline:
    """What a unit is compared with: a snapshot and where it came from, or why there is
    none (the regression checks' skip reason). Picklable: it travels in the job."""

    snapshot: Mapping[str, Any] | None
    source: str  # ".torchvet/snapshots/mlp.json", "base 1a2b3c4"
    missing: str = ""
    cost_share: float = DEFAULT_COST_SHARE  # regression.cost warns beyond this change
    origin: str = ""  # the baseline of the whole run: ".torchvet/snapshots", "base 1a2b3c4"


def snapshot_dir(project_root: str | os.PathLike[str]) -> Path:
    return Path(project_root) / DIRECTORY


def file_name(kind: str, name: str) -> str:
    """The unit's file under the snapshot directory; names that are not plain file names
    are percent-encoded so two units never share a file."""
    safe = quote(name, safe="-_.+=@[]")
    if safe.startswith("."):
        safe = "%2E" + safe[1:]
    return f"datasets/{safe}.json" if kind == "dataset" else f"{safe}.json"


def snapshot_path(directory: str | os.PathLike[str], kind: str, name: str) -> Path:
    return Path(directory) / file_name(kind, name)


def read(path: Path, kind: str, name: str) -> dict[str, Any] | None:
    """The snapshot in ``path`` (None when there is no file)."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise SnapshotError(f"{path}: cannot read the snapshot ({exc})") from None
    try:
        data = json.loads(text)
    except ValueError as exc:
        conflict = " (a merge conflict?)" if "<<<<<<<" in text else ""
        raise SnapshotError(
            f"{path}: not a JSON snapshot{conflict}: {exc}; regenerate it with "
            f"`torchvet snapshot --update -k {name}`") from None
    if not isinstance(data, dict) or "torchvet_snapshot" not in data:
        raise SnapshotError(f"{path}: not a torchvet snapshot (no 'torchvet_snapshot' key)")
    if data["torchvet_snapshot"] != FORMAT:
        raise SnapshotError(
            f"{path}: snapshot format {data['torchvet_snapshot']!r}, this torchvet reads "
            f"format {FORMAT}; upgrade torchvet or regenerate it with `torchvet snapshot "
            "--update`")
    if data.get("unit") != name or data.get("kind") != kind:
        raise SnapshotError(
            f"{path}: holds the snapshot of {data.get('kind')} {data.get('unit')!r}, not of "
            f"{kind} {name!r}; regenerate it with `torchvet snapshot --update -k {name}`")
    return data


def write(path: Path, snapshot: Mapping[str, Any]) -> int:
    """Write ``snapshot`` laid out for review (never through a symlink); its size in bytes."""
    text = dumps(snapshot)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.is_symlink():
        path.unlink()
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(text, encoding="utf-8", newline="\n")
    os.replace(temporary, path)
    return len(text.encode())


def dumps(snapshot: Mapping[str, Any]) -> str:
    """JSON with the top sections one entry per line and each entry compact."""
    return _render(snapshot, ()) + "\n"


def _render(value: Any, path: tuple[str, ...]) -> str:
    if not isinstance(value, Mapping) or not value:
        return json.dumps(value, ensure_ascii=False, allow_nan=False)
    depth = len(path)
    expand = depth < _EXPANDED_DEPTH or (
        depth == _EXPANDED_DEPTH and path[0] == "measured" and path[2] in _EXPANDED_DEEPER)
    items = [(json.dumps(key, ensure_ascii=False), _render(v, (*path, key) if expand else
                                                            (*path, key, "")))
             for key, v in _ordered(value)]
    if not expand:
        return "{" + ", ".join(f"{k}: {v}" for k, v in items) + "}"
    pad = "  " * (depth + 1)
    return "{\n" + ",\n".join(f"{pad}{k}: {v}" for k, v in items) + "\n" + "  " * depth + "}"


# Known keys in reading order (then the rest in natural order): what the unit is, its
# signature, its cost, its measured values; a digest reads shape, statistics, sample.
_ORDER = ("torchvet_snapshot", "unit", "kind", "seed", "signature", "forward", "inputs",
          "outputs", "length", "dtype", "state_dict", "params", "total", "trainable",
          "by_module", "measured", "flops", "activation_bytes", "modules", "call", "shape",
          "mean", "std", "min", "max", "nonfinite", "sample")
_RANK = {key: rank for rank, key in enumerate(_ORDER)}


def _ordered(mapping: Mapping[str, Any]) -> list[tuple[str, Any]]:
    """Known keys in reading order, then the rest in natural order (``layer2`` before
    ``layer10``)."""
    return sorted(((str(k), v) for k, v in mapping.items()),
                  key=lambda kv: (_RANK.get(kv[0], len(_RANK)), natural_order(kv[0])))


def load_baselines(directory: Path, units: list[tuple[str, str]], *,
                   label: str | None = None, root: Path | None = None
                   ) -> dict[tuple[str, str], Baseline]:
    """The baseline of every ``(kind, name)`` from the files in ``directory``; ``label``
    names the source in messages (default: the file, relative to ``root``)."""
    found: dict[tuple[str, str], Baseline] = {}
    origin = label or _shown(directory, root)
    for kind, name in units:
        path = snapshot_path(directory, kind, name)
        shown = label or _shown(path, root)
        data = read(path, kind, name)
        if data is None:
            found[(kind, name)] = Baseline(None, shown, f"no snapshot {shown}: {CREATE_HINT}",
                                           origin=origin)
        else:
            found[(kind, name)] = Baseline(data, shown, origin=origin)
    return found


def _shown(path: Path, root: Path | None) -> str:
    if root is not None:
        try:
            return path.resolve().relative_to(root.resolve()).as_posix()
        except ValueError:
            pass
    return path.as_posix()
