"""data.model_fit: a real batch of the dataset runs through the model (and the loss, or
the whole step, when declared) and stays finite — the generated inputs of the other
checks cannot show that the data and the model disagree on features, dtype or labels."""

from __future__ import annotations

import traceback
from typing import Any

import torch

from ...unit.context import CheckContext
from ...unit.data_batches import DatasetSource, label_path, split_sample
from ...unit.inputs import Inputs
from ...unit.pytree import floating_leaves
from ...unit.seeding import derived_seed, seed_everything
from ...unit.text import dtype_name, one_line, shape_str
from ...verdict import Outcome, Skip, failed, passed
from ..causes import forward_errors
from ..registry import check
from ..shared.data_scan import get_scan, loaded_samples, require_data
from .labels import CLASS_LOSSES


@check("data.model_fit")
def model_fit(ctx: CheckContext) -> Outcome:
    data = require_data(ctx)
    spec = ctx.spec
    if spec is None:
        raise Skip("data.model_fit needs a model: declare the dataset in a model's spec")
    scan = get_scan(ctx)
    loaded_samples(ctx, scan)
    whole = spec.step is not None
    source = DatasetSource(data, ctx.seed, whole_batch=whole)
    batch_size = ctx.train_batch_size
    try:
        batch = source.batch(batch_size)
        key = source.key()
    except Exception as exc:
        for index in sorted(scan.errors):
            scan.defer(scan.errors[index], "data.model_fit")
        return failed(f"building a batch of {batch_size} samples raised {one_line(exc)}: every "
                      "sample must load and collate (see data.collate)",
                      traceback.format_exc(), ctx.where_exception(exc))
    raw_inputs, label = (batch, None) if whole else split_sample(batch, key)
    inputs = Inputs.from_user(raw_inputs).map(lambda t: t.to(ctx.device))
    desc = inputs.describe()
    seed_everything(derived_seed(ctx.seed, "data.model_fit"))
    if whole:
        return _fit_step(ctx, inputs, desc)
    model = ctx.model.eval()
    with torch.no_grad():
        try:
            output = ctx.call(model, inputs)
        except Exception as exc:
            details = traceback.format_exc()
            cause = forward_errors.explain(ctx, inputs, exc)
            if cause is not None:
                return failed(f"a real batch ({desc}) does not fit the model: {one_line(exc)}; "
                              f"{cause.phrase()}", details, cause.where)
            return failed(
                f"a real batch ({desc}) does not fit the model: {one_line(exc)}"
                f"{_dtype_hint(ctx, inputs)}; make the dataset's samples match the model's "
                "input layer (features, channels, dtype), or fix the model",
                details,
                ctx.where_exception(exc),
            )
        bad = [(p, t) for p, t in floating_leaves(output) if not bool(torch.isfinite(t).all())]
        if bad:
            return failed(
                f"{bad[0][0]} contains NaN/Inf on a real batch ({desc}) although the forward "
                "pass is finite on generated inputs: check the data's scale and "
                "normalisation (see data.finite)",
                where=ctx.where_model(),
            )
        if spec.loss is None:
            return passed(f"a real batch ({desc}) runs through the model; outputs finite")
        target = label.to(ctx.device) if isinstance(label, torch.Tensor) else (
            torch.as_tensor(label).to(ctx.device) if label is not None else None)
        label_desc = (f"labels {label_path(batch, key)}: {shape_str(tuple(target.shape))} "
                      f"{dtype_name(target.dtype)}" if target is not None else "no labels")
        try:
            loss = ctx.loss_of(output, target)
        except Exception as exc:
            return failed(
                f"the loss raised {one_line(exc)} on a real batch ({label_desc})"
                f"{_label_hint(ctx, target)}: make the labels match what the loss expects "
                "(dtype, shape, range)",
                traceback.format_exc(),
                ctx.where_exception(exc),
            )
    if not isinstance(loss, torch.Tensor) or not bool(torch.isfinite(loss).all()):
        return failed(f"the loss on a real batch ({label_desc}) is {loss}, not finite: check "
                      "the labels' range and the data's scale (see data.labels, data.finite)",
                      where=ctx.where_model())
    return passed(f"a real batch ({desc}; {label_desc}) runs through the model and the loss "
                  f"({float(loss):.4g})")


def _fit_step(ctx: CheckContext, inputs: Inputs, desc: str) -> Outcome:
    """The user's step as it is meant to run (train mode, autograd on), on a copy: a step
    may need gradients (a gradient penalty) or update the model itself (an EMA)."""
    assert ctx.spec is not None and ctx.spec.step is not None
    try:
        with torch.enable_grad():
            loss = ctx.training_loss(ctx.fresh_copy().train(), inputs, None)
    except Exception as exc:
        return failed(
            f"the step raised {one_line(exc)} on a real batch ({desc}): make the dataset's "
            "batches match what the step and the model expect",
            traceback.format_exc(),
            ctx.where_exception(exc),
        )
    if not isinstance(loss, torch.Tensor) or not bool(torch.isfinite(loss).all()):
        return failed(f"the step's loss on a real batch ({desc}) is {loss}, not a finite "
                      "tensor: check the data's scale and labels",
                      where=ctx.locator.for_function(ctx.spec.step) or ctx.where_model())
    value = float(loss.detach().mean())
    return passed(f"a real batch ({desc}) runs through the step; loss {value:.4g}")


def _dtype_hint(ctx: CheckContext, inputs: Inputs) -> str:
    wanted = ctx.parameters_dtype()
    for path, tensor in inputs.tensors():
        if tensor.is_floating_point() and tensor.dtype != wanted:
            return (f" (the batch's {path} is {dtype_name(tensor.dtype)} but the parameters are "
                    f"{dtype_name(wanted)}: convert in __getitem__, e.g. .float())")
    return ""


def _label_hint(ctx: CheckContext, target: Any) -> str:
    loss = ctx.spec.loss if ctx.spec is not None else None
    if (isinstance(loss, CLASS_LOSSES) and isinstance(target, torch.Tensor)
            and target.is_floating_point()):
        return f" ({type(loss).__name__} needs int64 class ids: see data.labels)"
    return ""
