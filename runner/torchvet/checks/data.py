"""data.*: datasets that load, batch, label and reproduce the way training assumes."""

from __future__ import annotations

import traceback
from collections.abc import Iterator, Sequence
from typing import Any

import torch

from ..context import CheckContext
from ..data_batches import collate as collate_samples
from ..pytree import leaves
from ..spec import DataSpec
from .base import Outcome, Skip, check, failed, passed
from .forward import one_line


def require_data(ctx: CheckContext) -> DataSpec:
    if ctx.data is None:
        raise Skip("no dataset declared")
    return ctx.data


def batch_length(batch: Any) -> int | None:
    """Samples in a collated batch: dim 0 of its first tensor, else its length."""
    for _, tensor in leaves(batch, "batch"):
        if tensor.dim() >= 1:
            return int(tensor.shape[0])
    if isinstance(batch, (list, tuple)):
        return len(batch)
    return None


def dataset_length(data: DataSpec) -> int | None:
    try:
        return len(data.dataset)
    except TypeError:
        return None


def index_batches(length: int, batch_size: int, drop_last: bool, budget: int
                  ) -> Iterator[list[int]]:
    """The sequential batches a DataLoader makes: the first ones up to ``budget`` samples,
    then the last full batch and the partial one, so the tail is always checked."""
    starts = list(range(0, length, batch_size))
    if drop_last and length % batch_size:
        starts = starts[:-1]
    head = max(1, budget // batch_size)
    chosen = starts[:head] + [s for s in starts[-2:] if s not in starts[:head]]
    for start in chosen:
        yield list(range(start, min(start + batch_size, length)))


def load(data: DataSpec, index: int) -> Any:
    return data.dataset[index]


@check("data.collate")
def collate(ctx: CheckContext) -> Outcome:
    data = require_data(ctx)
    length = dataset_length(data)
    loader = data.loader
    batch_size = data.batch_size
    drop_last = bool(getattr(loader, "drop_last", False))
    if length is None or (loader is not None and loader.batch_size is None):
        return _collate_by_iteration(ctx, data)
    sizes: list[int] = []
    for indices in index_batches(length, batch_size, drop_last, data.max_samples):
        samples = []
        for index in indices:
            try:
                samples.append(load(data, index))
            except Exception as exc:
                hint = (
                    f": __len__ says {length} but index {index} does not load; make __len__ "
                    "return the number of samples that exist"
                    if isinstance(exc, IndexError) else ""
                )
                return failed(
                    f"dataset[{index}] raised {one_line(exc)}{hint}",
                    traceback.format_exc(),
                    ctx.where_exception(exc),
                )
        try:
            batch = collate_samples(data, samples)
        except Exception as exc:
            return failed(
                f"collating samples {indices[0]}..{indices[-1]} raised {one_line(exc)}: samples "
                "of different shapes cannot be stacked; pad or crop them in the dataset, or "
                "pass a collate_fn that pads (torch.nn.utils.rnn.pad_sequence)",
                traceback.format_exc(),
                ctx.where_exception(exc),
            )
        got = batch_length(batch)
        if got != len(indices):
            return failed(
                f"the batch of samples {indices[0]}..{indices[-1]} holds {got} samples, not "
                f"{len(indices)}: the collate_fn must keep one entry per sample along dim 0"
            )
        sizes.append(got)
    last = sizes[-1] if sizes else 0
    return passed(
        f"{len(sizes)} batch(es) of {batch_size} checked, the last holds {last}"
        + (" (drop_last)" if drop_last else "")
    )


def _collate_by_iteration(ctx: CheckContext, data: DataSpec) -> Outcome:
    from torch.utils.data import DataLoader

    loader = data.loader or DataLoader(
        data.dataset, batch_size=data.batch_size, collate_fn=data.collate_fn
    )
    sizes = []
    try:
        for batch in loader:
            sizes.append(batch_length(batch))
            if sum(s or 0 for s in sizes) >= data.max_samples:
                break
    except Exception as exc:
        return failed(
            f"iterating the DataLoader raised {one_line(exc)} after {len(sizes)} batch(es)",
            traceback.format_exc(),
            ctx.where_exception(exc),
        )
    if not sizes:
        return failed("the DataLoader yielded no batch: the dataset is empty")
    expected = data.batch_size
    wrong = [i for i, s in enumerate(sizes[:-1]) if s != expected]
    if wrong:
        return failed(
            f"batch {wrong[0]} holds {sizes[wrong[0]]} samples, not the declared {expected}"
        )
    return passed(f"{len(sizes)} batch(es) of {expected}")


def first_tensor(sample: Any) -> torch.Tensor | None:
    found = leaves(sample, "sample")
    return found[0][1] if found else None


__all__: Sequence[str] = ["collate"]
