"""Copies of a model that cost less than a copy.

- :func:`meta_copy`: a twin on the ``meta`` device (shapes and dtypes, no data) made
  without ever materialising the weights: for checks that look at structure, not values.
- :func:`sharing_copy`: new modules around the same parameters, for eval forwards.
- :class:`SavedValues`: the values of every parameter and buffer, kept in memory or spilled
  to a file on disk, read back one tensor at a time: what the training run compares
  against ("did this parameter change since?", updated as it goes) and restores a model
  lent in place from.
- :func:`released_as_loaded`: while ``load_state_dict`` copies a memory-mapped checkpoint
  into a model, each module's file pages are handed back once copied, so the checkpoint
  is never resident as a whole beside the model.

Spilling is pointless where the temporary directory lives in memory (tmpfs), so
:func:`spill_directory` says where a spill really goes to disk.
"""

from __future__ import annotations

import contextlib
import ctypes
import io
import mmap
import os
import shutil
import tempfile
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .closures import deep_copy, foreign_reference
from .rss import libc

META = torch.device("meta")
MADV_DONTNEED = 4
MEMORY_FILESYSTEMS = {"tmpfs", "ramfs", "devtmpfs"}


def meta_copy(model: nn.Module, fallback: Callable[[], nn.Module]) -> nn.Module:
    """A deep copy whose registered parameters and buffers are on ``meta``, built without
    copying their data (everything else — plain tensor attributes included — is copied as
    ``copy.deepcopy`` would, so a tensor left outside the registry stays where it was);
    ``fallback()`` where the model cannot be deep-copied or its copy still reaches the
    original (a function it holds that the copy could not follow)."""
    try:
        twin = _meta_copy(model)
    except Exception:
        return fallback()
    return twin if foreign_reference(model, twin) is None else fallback()


def _meta_copy(model: nn.Module) -> nn.Module:
    memo: dict[int, Any] = {}
    for tensor in [*model.parameters(), *model.buffers()]:
        if id(tensor) in memo or tensor.device.type == "meta":
            continue
        twin = torch.empty_like(tensor, device=META)
        if type(tensor) is nn.Parameter:
            twin = nn.Parameter(twin, requires_grad=tensor.requires_grad)
        elif type(tensor) is not torch.Tensor:
            continue  # a subclass (lazy parameters, ...): deepcopy knows how to copy it
        memo[id(tensor)] = twin
    return deep_copy(model, memo)


def sharing_copy(model: nn.Module, fallback: Callable[[], nn.Module]) -> nn.Module:
    """A deep copy that shares the parameters (same tensors) and copies the rest: for
    eval forwards that must not leave caches in the original's modules but never write
    to its weights; ``fallback()`` where the model cannot be deep-copied."""
    try:
        return deep_copy(model, {id(p): p for p in model.parameters()})
    except Exception:
        return fallback()


def named_state(model: nn.Module) -> list[tuple[str, torch.Tensor]]:
    """Every parameter and buffer once (tied tensors under their first name)."""
    seen: set[int] = set()
    found = []
    for name, tensor in [*model.named_parameters(remove_duplicate=False),
                         *model.named_buffers(remove_duplicate=False)]:
        if id(tensor) not in seen:
            seen.add(id(tensor))
            found.append((name, tensor))
    return found


def nbytes(tensors: Iterable[torch.Tensor]) -> int:
    """Bytes of distinct storages (tied or shared tensors count once)."""
    seen: set[tuple[str, int]] = set()
    total = 0
    for t in tensors:
        key = (str(t.device), t.untyped_storage().data_ptr())
        if key not in seen or key[1] == 0:
            seen.add(key)
            total += t.untyped_storage().nbytes()
    return total


def filesystem(path: Path, table: Path = Path("/proc/mounts")) -> str:
    """The type of the filesystem ``path`` is on, from /proc/mounts ('' if unknown)."""
    try:
        mounts = table.read_text().splitlines()
    except OSError:
        return ""
    resolved = str(path.resolve())
    best, kind = "", ""
    for line in mounts:
        parts = line.split()
        if len(parts) >= 3:
            point = parts[1].replace("\\040", " ")
            inside = resolved == point or resolved.startswith(point.rstrip("/") + "/")
            if inside and len(point) >= len(best):
                best, kind = point, parts[2]
    return kind


def spill_directory(needed: int) -> str | None:
    """A temporary directory on disk with room for ``needed`` bytes, or None."""
    base = Path(tempfile.gettempdir())
    if filesystem(base) in MEMORY_FILESYSTEMS:
        return None
    try:
        free = shutil.disk_usage(base).free
    except OSError:
        return None
    return str(base) if free > needed * 1.1 + (256 << 20) else None


def settle(fd: int) -> None:
    """Write a file's dirty pages to disk and drop them from the page cache: inside a
    memory-limited container the cache is charged to the container, and dirty pages
    cannot be reclaimed until they are written."""
    with contextlib.suppress(OSError, AttributeError):
        os.fdatasync(fd)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)


def settle_path(path: str | os.PathLike[str]) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        settle(fd)
    finally:
        os.close(fd)


def _spillable(t: torch.Tensor) -> bool:
    return t.layout == torch.strided and not t.is_quantized and t.device.type != "meta"


def _raw(t: torch.Tensor) -> torch.Tensor:
    """The bytes of a contiguous CPU tensor as a flat uint8 view (no copy)."""
    return t.reshape(-1).view(torch.uint8)


class SavedValues(Mapping[str, torch.Tensor]):
    """The values of named tensors at one moment; ``saved[name]`` reads one back.

    In memory: a clone per tensor. Spilled: one file holding every tensor's bytes, read
    back tensor by tensor (the page cache keeps recently read parts at no cost to the
    process). ``restore`` writes the values back in place; ``close`` deletes the file.
    """

    def __init__(self, named: Iterable[tuple[str, torch.Tensor]],
                 directory: str | None = None) -> None:
        self._memory: dict[str, torch.Tensor] = {}
        self._offsets: dict[str, tuple[int, torch.dtype, torch.Size, torch.device]] = {}
        self._file: io.BufferedRandom | None = None
        self.path: str | None = None
        self._dirty = False
        named = list(named)
        if directory is not None:
            fd, self.path = tempfile.mkstemp(prefix="torchvet-values-", dir=directory)
            self._file = os.fdopen(fd, "w+b")
        offset = 0
        for name, tensor in named:
            data = tensor.detach()
            if self._file is None or not _spillable(data):
                self._memory[name] = data.clone()
                continue
            host = data.to("cpu").contiguous()
            self._file.write(_raw(host).numpy().data)
            self._offsets[name] = (offset, data.dtype, data.shape, data.device)
            offset += host.numel() * host.element_size()
        if self._file is not None:
            self._file.flush()
            settle(self._file.fileno())

    @torch.no_grad()
    def update(self, name: str, value: torch.Tensor) -> None:
        """Replace the value kept for ``name`` (same shape and dtype)."""
        if name in self._memory:
            self._memory[name].copy_(value)
            return
        assert self._file is not None
        self._file.seek(self._offsets[name][0])
        self._file.write(_raw(value.detach().to("cpu").contiguous()).numpy().data)
        self._dirty = True

    def _sync(self) -> None:
        """Before a read: written values reach the file and leave the page cache."""
        if self._dirty and self._file is not None:
            self._file.flush()
            settle(self._file.fileno())
            self._dirty = False

    @property
    def spilled(self) -> bool:
        return bool(self._offsets)

    def __getitem__(self, name: str) -> torch.Tensor:
        if name in self._memory:
            return self._memory[name]
        offset, dtype, shape, device = self._offsets[name]
        value = torch.empty(shape, dtype=dtype)
        self._read(offset, value)
        return value.to(device)

    def _read(self, offset: int, into: torch.Tensor) -> None:
        assert self._file is not None
        self._sync()
        self._file.seek(offset)
        view = _raw(into).numpy().data
        if self._file.readinto(view) != len(view):
            raise OSError(f"saved values {self.path} are truncated")

    def __iter__(self) -> Iterator[str]:
        return iter([*self._memory, *self._offsets])

    def __len__(self) -> int:
        return len(self._memory) + len(self._offsets)

    @torch.no_grad()
    def restore(self, named: Iterable[tuple[str, torch.Tensor]]) -> None:
        """Write the saved values back into ``named`` (the same names, in place)."""
        for name, tensor in named:
            if name in self._offsets and tensor.device.type == "cpu" and tensor.is_contiguous():
                self._read(self._offsets[name][0], tensor.data)
            elif name in self:
                tensor.copy_(self[name])

    def close(self) -> None:
        self._memory = {}
        if self._file is not None:
            self._file.close()
            self._file = None
        if self.path is not None:
            with contextlib.suppress(OSError):
                os.unlink(self.path)
            self.path = None


def release_pages(tensors: Iterable[torch.Tensor]) -> None:
    """Drop the resident pages of memory-mapped, unmodified CPU tensors (they are read
    from the file again if touched); a no-op where ``madvise`` is not available."""
    lib = libc()
    advise = getattr(lib, "madvise", None) if lib is not None else None
    if advise is None:
        return
    page = mmap.PAGESIZE
    for t in tensors:
        size = t.untyped_storage().nbytes()
        if t.device.type != "cpu" or size == 0:
            continue
        start = t.untyped_storage().data_ptr()
        aligned = start - start % page
        advise(ctypes.c_void_p(aligned), ctypes.c_size_t(start + size - aligned),
               ctypes.c_int(MADV_DONTNEED))


@contextlib.contextmanager
def released_as_loaded(model: nn.Module) -> Iterator[None]:
    """Around ``model.load_state_dict(torch.load(..., mmap=True))``: once a module's
    tensors are copied, their pages of the mapped file are released."""
    pending: list[torch.Tensor] = []

    def before_module(module: nn.Module, state: Mapping[str, Any], prefix: str,
                      *_: Any) -> None:
        release_pages(pending)  # every module before this one has copied its tensors
        pending.clear()
        for name in [*module._parameters, *module._buffers]:
            value = state.get(prefix + name)
            if isinstance(value, torch.Tensor):
                pending.append(value)

    # a TorchScript module takes no hooks: its tensors are released with the next module's
    handles = [m._register_load_state_dict_pre_hook(before_module, with_module=True)
               for m in model.modules() if not isinstance(m, torch.jit.ScriptModule)]
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()
        release_pages(pending)
