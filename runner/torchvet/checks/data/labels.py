"""data.labels: labels are what the loss expects — class ids within ``[0, num_classes)``,
or probabilities in ``[0, 1]``; the range comes from the spec, the loss or the model's
``(B, C)`` output, and 1-based labels are named as such."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from ...unit.context import CheckContext
from ...unit.data_batches import DataSpec, label_key, label_of, label_path
from ...unit.pytree import primary_leaf
from ...unit.text import dtype_name, shape_str
from ...verdict import Location, Outcome, Skip, failed, passed, warned
from ..registry import check
from ..shared.data_scan import Scan, get_scan, loaded_samples, require_data, where_dataset
from .layout import layout, to_tensor

CLASS_LOSSES = (nn.CrossEntropyLoss, nn.NLLLoss)

FLOAT_TARGET_LOSSES = (
    nn.BCELoss, nn.BCEWithLogitsLoss, nn.MSELoss, nn.L1Loss, nn.SmoothL1Loss, nn.HuberLoss,
    nn.KLDivLoss, nn.MultiLabelSoftMarginLoss, nn.SoftMarginLoss, nn.PoissonNLLLoss,
    nn.GaussianNLLLoss,
)

PROBABILITY_LOSSES = (nn.BCELoss, nn.BCEWithLogitsLoss)

DEFAULT_IGNORE_INDEX = -100  # CrossEntropyLoss's default; Hugging Face pads labels with it

@dataclass
class LabelRule:
    """What the labels must be: a class range, a loss's expectations."""

    num_classes: int | None = None
    source: str = ""  # where num_classes came from
    loss: Any = None
    ignore_index: int = DEFAULT_IGNORE_INDEX

    @property
    def loss_name(self) -> str:
        return type(self.loss).__name__ if self.loss is not None else ""

    @property
    def class_indices(self) -> bool:
        """Integer class ids are required (CE/NLL, or num_classes without a float loss)."""
        if isinstance(self.loss, CLASS_LOSSES):
            return True
        return self.num_classes is not None and not isinstance(self.loss, FLOAT_TARGET_LOSSES)

    def reason(self) -> str:
        if isinstance(self.loss, CLASS_LOSSES):
            return f"the {self.loss_name} in the spec"
        return f"num_classes={self.num_classes} ({self.source})"


def label_rule(ctx: CheckContext, data: DataSpec) -> LabelRule:
    rule = LabelRule()
    spec = ctx.spec
    if spec is not None and spec.loss is not None:
        rule.loss = spec.loss
        rule.ignore_index = int(getattr(spec.loss, "ignore_index", DEFAULT_IGNORE_INDEX))
    if data.num_classes:
        rule.num_classes, rule.source = int(data.num_classes), "declared"
    elif spec is not None and spec.num_classes:
        rule.num_classes, rule.source = int(spec.num_classes), "declared"
    elif isinstance(rule.loss, CLASS_LOSSES):
        classes = _classes_from_output(ctx)
        if classes:
            rule.num_classes, rule.source = classes, "the model's (B, C) output"
    return rule


def _classes_from_output(ctx: CheckContext) -> int | None:
    try:
        output = ctx.eval_output()
    except Exception:
        return None
    primary = primary_leaf(output)
    if primary is None or primary[1].dim() < 2:
        return None
    return int(primary[1].shape[1])


@check("data.labels")
def labels(ctx: CheckContext) -> Outcome:
    data = require_data(ctx)
    scan = get_scan(ctx)
    found = loaded_samples(ctx, scan)
    key = label_key(found[0][1], data.label)
    hint = ("declare where it is: 'label': 'my_key' (or a tuple index) in the factory's dict, "
            "or label = ... in [tool.torchvet.datasets.<name>]")
    if key is None:
        raise Skip(f"no label in the samples ({layout(found[0][1]).describe()}); {hint}")
    values: list[tuple[int, torch.Tensor]] = []
    first_sample = found[0][1]
    path = label_path(first_sample, key)
    for index, sample in found:
        present, value = label_of(sample, key)
        if not present:
            continue
        if isinstance(value, str) or (
            isinstance(value, list) and value and isinstance(value[0], str)
        ):
            return _string_labels(ctx, data, scan, index, path, value)
        tensor = to_tensor(value)
        if tensor is None:
            raise Skip(f"the label {scan.name(index)}{path} is {layout(value).describe()}, not "
                       f"a number or tensor: not checked as class labels; {hint}")
        values.append((index, tensor))
    if not values:
        raise Skip(f"no sample has the label {path}; {hint}")
    rule = label_rule(ctx, data)
    where = where_dataset(ctx, data.dataset)
    if any(t.is_floating_point() or t.is_complex() for _, t in values):
        return _float_labels(scan, rule, values, path, where)
    return _integer_labels(scan, rule, values, path, where)


def _string_labels(ctx: CheckContext, data: DataSpec, scan: Scan, index: int, path: str,
                   value: Any) -> Outcome:
    rule = label_rule(ctx, data)
    if not rule.class_indices:
        raise Skip(f"the labels {path} are strings ({value!r} at {scan.name(index)}): not "
                   "checked; declare num_classes to require class ids")
    return failed(
        f"{scan.name(index)}{path} is the string {value!r}: {rule.reason()} needs integer class "
        "ids; map class names to ids in __getitem__ (e.g. self.class_to_idx[name])",
        where=where_dataset(ctx, data.dataset),
    )


def _float_labels(scan: Scan, rule: LabelRule, values: list[tuple[int, torch.Tensor]],
                  path: str, where: Location) -> Outcome:
    index, tensor = next((i, t) for i, t in values if t.is_floating_point() or t.is_complex())
    name = f"{scan.name(index)}{path}"
    classes = rule.num_classes
    soft = classes is not None and all(t.dim() >= 1 and t.shape[-1] == classes for _, t in values)
    if isinstance(rule.loss, PROBABILITY_LOSSES) or soft:
        low = min(float(t.min()) for _, t in values if t.numel())
        high = max(float(t.max()) for _, t in values if t.numel())
        if low < 0 or high > 1:
            at = next(i for i, t in values if t.numel() and (t.min() < 0 or t.max() > 1))
            return failed(
                f"{scan.name(at)}{path} holds values outside [0, 1] (range [{low:g}, {high:g}]): "
                f"{'the ' + rule.loss_name if rule.loss is not None else 'class probabilities'} "
                "need targets in [0, 1]; scale or one-hot encode the labels",
                where=where,
            )
        return passed(f"float labels {path} in [{low:g}, {high:g}] across {len(values)} "
                      "samples (probability targets)", scan.note)
    if not rule.class_indices:
        raise Skip(f"the labels {path} are {dtype_name(tensor.dtype)}: regression targets, "
                   "not checked as classes; declare num_classes (or use CrossEntropyLoss) to "
                   "require integer class ids")
    sample_value = _show(tensor)
    whole = bool(torch.all(tensor == torch.round(tensor))) if not tensor.is_complex() else False
    fix = ("return it as an integer: torch.tensor(label, dtype=torch.long) or int(label)"
           if whole else
           "values like these are not class ids: if this is a regression target, drop "
           "num_classes and use a regression loss")
    return failed(
        f"{name} is a {dtype_name(tensor.dtype)} label ({sample_value}): {rule.reason()} "
        f"needs integer (int64) class ids; {fix}",
        where=where,
    )


def _show(tensor: torch.Tensor) -> str:
    flat = tensor.flatten()
    if flat.numel() == 1:
        return repr(flat[0].item())
    shown = ", ".join(f"{v:g}" for v in flat[:4].tolist())
    return f"shape {shape_str(tuple(tensor.shape))}: {shown}{', ...' if flat.numel() > 4 else ''}"


def _integer_labels(scan: Scan, rule: LabelRule, values: list[tuple[int, torch.Tensor]],
                    path: str, where: Location) -> Outcome:
    low: tuple[int, int] | None = None  # (value, sample index)
    high: tuple[int, int] | None = None
    seen_zero = False
    distinct: set[int] = set()
    for index, tensor in values:
        kept = tensor.flatten().long()
        kept = kept[kept != rule.ignore_index]
        if kept.numel() == 0:
            continue
        mn, mx = int(kept.min()), int(kept.max())
        if low is None or mn < low[0]:
            low = (mn, index)
        if high is None or mx > high[0]:
            high = (mx, index)
        seen_zero = seen_zero or bool((kept == 0).any())
        if len(distinct) < 64:
            distinct.update(int(v) for v in kept.unique()[:64].tolist())
    if low is None or high is None:
        raise Skip(f"every label {path} equals the ignore index {rule.ignore_index}")
    classes = rule.num_classes
    count = len(values)
    if isinstance(rule.loss, PROBABILITY_LOSSES):
        return failed(
            f"{scan.name(values[0][0])}{path} is an integer label but the {rule.loss_name} "
            "needs float targets in [0, 1]: return torch.tensor(label, dtype=torch.float32)",
            where=where,
        )
    if classes is not None:
        if high[0] >= classes and low[0] >= 1 and high[0] == classes:
            return failed(
                f"labels run 1..{classes} ({scan.name(high[1])}{path} = {high[0]}) but "
                f"{rule.reason()} needs them in [0, {classes}): they look 1-based; subtract 1 "
                f"in __getitem__ (or declare num_classes={classes + 1} if class 0 exists)",
                where=where,
            )
        if high[0] >= classes:
            return failed(
                f"{scan.name(high[1])}{path} = {high[0]} is outside [0, {classes}) "
                f"({rule.reason()}): fix the labels or num_classes",
                where=where,
            )
        if low[0] < 0:
            return failed(
                f"{scan.name(low[1])}{path} = {low[0]} is negative: {rule.reason()} needs "
                f"labels in [0, {classes}) (only the ignore_index {rule.ignore_index} may mark "
                "positions to skip); fix the labels",
                where=where,
            )
        return passed(f"labels {path} lie in [{low[0]}, {high[0]}] within [0, {classes}) across "
                      f"{count} samples", scan.note)
    if low[0] == 1 and not seen_zero and len(distinct) >= 2:
        return warned(
            f"labels {path} run {low[0]}..{high[0]} and no sample of {count} has label 0: they "
            "look 1-based, and CrossEntropyLoss expects 0..C-1; subtract 1 in __getitem__, or "
            "declare num_classes to check the range exactly",
            where=where,
        )
    return passed(f"integer labels {path} in [{low[0]}, {high[0]}] across {count} samples "
                  "(declare num_classes to check the upper bound)", scan.note)
