"""unit.copies: copies of a model that cost less than a copy — a meta-device twin, a
weight-sharing copy, a copy of its values (SavedValues) in memory or on disk, and a checkpoint
streamed into a model without sitting in memory beside it."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

from torchvet.unit import rss
from torchvet.unit.copies import (
    SavedValues,
    filesystem,
    meta_copy,
    named_state,
    nbytes,
    released_as_loaded,
    sharing_copy,
    spill_directory,
)

MiB = 1 << 20


class Tied(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Embedding(10, 4)
        self.head = nn.Linear(4, 10, bias=False)
        self.head.weight = self.embed.weight
        self.norm = nn.BatchNorm1d(4)
        self.scale = torch.ones(4)  # a plain tensor attribute: not registered

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.norm(self.embed(x).mean(1)) * self.scale)


class NoCopy(nn.Linear):
    def __deepcopy__(self, memo: dict) -> nn.Module:
        raise TypeError("cannot be copied")


def test_meta_copy_moves_registered_tensors_without_copying_them() -> None:
    model = Tied()
    twin = meta_copy(model, fallback=lambda: pytest.fail("no fallback needed"))
    assert all(t.device.type == "meta" for _, t in named_state(twin))
    assert twin.head.weight is twin.embed.weight, "ties survive"
    assert twin.scale.device.type == "cpu", "an unregistered tensor stays where it was"
    assert twin.embed.weight.requires_grad and twin is not model
    assert all(t.device.type == "cpu" for _, t in named_state(model)), "original untouched"


def test_meta_copy_and_sharing_copy_fall_back_when_deepcopy_fails() -> None:
    fresh = nn.Linear(2, 2)
    assert meta_copy(NoCopy(2, 2), fallback=lambda: fresh) is fresh
    assert sharing_copy(NoCopy(2, 2), fallback=lambda: fresh) is fresh


def test_sharing_copy_shares_parameters_and_copies_modules_and_buffers() -> None:
    model = Tied()
    copied = sharing_copy(model, fallback=lambda: pytest.fail("no fallback needed"))
    assert copied.embed.weight is model.embed.weight
    assert copied.norm is not model.norm
    assert copied.norm.running_mean is not model.norm.running_mean
    copied.cache = torch.zeros(1)  # a lazily built cache lands in the copy only
    assert not hasattr(model, "cache")


def test_nbytes_counts_a_tied_storage_once() -> None:
    model = Tied()
    params = [p for _, p in model.named_parameters(remove_duplicate=False)]
    assert len(params) > len(list(model.parameters()))
    assert nbytes(params) == sum(p.numel() * p.element_size() for p in model.parameters())


@pytest.mark.parametrize("spill", [False, True])
def test_saved_values_keep_the_values_and_restores_them(tmp_path: Path, spill: bool) -> None:
    model = Tied()
    model.register_buffer("flags", torch.tensor([True, False]))
    model.register_buffer("low", torch.arange(6, dtype=torch.bfloat16).reshape(2, 3))
    before = {n: t.detach().clone() for n, t in named_state(model)}
    saved = SavedValues(named_state(model), str(tmp_path) if spill else None)
    assert saved.spilled is spill and set(saved) == set(before)
    with torch.no_grad():
        for _, t in named_state(model):
            t.copy_(torch.full_like(t, 7) if t.dtype != torch.bool else ~t)
    for name, value in before.items():
        assert torch.equal(saved[name], value), name
        assert not torch.equal(dict(named_state(model))[name], value), name
    saved.restore(named_state(model))
    for name, value in before.items():
        assert torch.equal(dict(named_state(model))[name], value), name
    path = saved.path
    saved.close()
    assert path is None or not os.path.exists(path)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("spill", [False, True])
def test_saved_values_update_replaces_one_value_and_keeps_the_others(tmp_path: Path, spill: bool
                                                                 ) -> None:
    model = Tied()
    before = {n: t.detach().clone() for n, t in named_state(model)}
    saved = SavedValues(named_state(model), str(tmp_path) if spill else None)
    first, *others = before
    saved.update(first, torch.full_like(before[first], 3.0))
    assert torch.equal(saved[first], torch.full_like(before[first], 3.0))
    for name in others:
        assert torch.equal(saved[name], before[name]), name
    saved.close()


def test_spilling_goes_to_disk_only(tmp_path: Path) -> None:
    mounts = tmp_path / "mounts"
    mounts.write_text("/dev/vda / ext4 rw 0 0\ntmpfs /tmp tmpfs rw 0 0\n"
                      "tmpfs /tmp/on\\040disk/x tmpfs rw 0 0\n"
                      "/dev/vdb /tmp/on\\040disk ext4 rw 0 0\n")
    assert filesystem(Path("/tmp/a/b"), mounts) == "tmpfs"
    assert filesystem(Path("/home/x"), mounts) == "ext4"
    assert filesystem(Path("/tmp/on disk/file"), mounts) == "ext4"
    assert filesystem(Path("/x"), tmp_path / "missing") == ""
    assert spill_directory(1 << 62) is None, "no disk has room for 4 EiB"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="madvise and VmHWM: Linux")
def test_a_mapped_checkpoint_streams_into_a_model(tmp_path: Path) -> None:
    model = nn.Sequential(*(nn.Linear(1024, 1024) for _ in range(16)))  # 64 MiB
    path = tmp_path / "state.pt"
    torch.save(model.state_dict(), path)
    fresh = nn.Sequential(*(nn.Linear(1024, 1024) for _ in range(16)))
    loaded = torch.load(path, weights_only=True, mmap=True)
    rss.release_freed()
    start = rss.resident()
    rss.reset_peak()
    with released_as_loaded(fresh):
        fresh.load_state_dict(loaded, strict=True)
    grown = rss.peak() - start
    for (name, a), (_, b) in zip(model.state_dict().items(), fresh.state_dict().items(),
                                 strict=True):
        assert torch.equal(a, b), name
    # one layer's pages (4 MiB) at a time, not the 64 MiB checkpoint
    assert grown < 24 * MiB, f"{grown / MiB:.0f} MiB resident while loading"
