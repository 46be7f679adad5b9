"""learning.input_scale: real inputs reach the first layer near unit scale.

Raw features (pixels 0..255, counts in the thousands, character codes in the 60s) make
the first layer's pre-activations and gradients huge: SGD steps overshoot, ReLUs die, the
bias never catches up. Read at the first Linear/Conv/RNN of the probe's forward on a real
batch, so a normalisation the model applies first (a BatchNorm at the input, x / 255 in
forward) counts; a normalisation layer right after that first layer counts too.
"""

from __future__ import annotations

from ...results import Status
from ...unit.context import CheckContext
from ...verdict import Outcome
from ..causes.findings import Finding, finder, report, where_module
from ..registry import check
from ..shared.probe import NORM_KINDS, LayerCall, init_probe

FAR_FROM_UNIT = 20.0  # a feature's root mean square (mean and spread together)


def first_layer(ctx: CheckContext) -> tuple[LayerCall | None, bool]:
    """The first weight layer and whether a normalisation layer follows it directly."""
    layers = init_probe(ctx).layers
    for index, layer in enumerate(layers):
        if layer.weight and layer.features is not None:
            after = layers[index + 1] if index + 1 < len(layers) else None
            return layer, after is not None and after.kind in NORM_KINDS
    return None, False


@finder("learning.input_scale")
def find(ctx: CheckContext) -> Finding | None:
    layer, normalised = first_layer(ctx)
    if layer is None or layer.features is None or normalised:
        return None
    features = layer.features.double()
    rms = features.pow(2).mean(1).sqrt()
    worst = int(rms.argmax())
    if float(rms[worst]) <= FAR_FROM_UNIT:
        return None
    column = features[worst]
    probe = init_probe(ctx)
    return Finding(
        "learning.input_scale", Status.WARNED,
        f"the inputs reach {layer.name or 'the model'} ({layer.kind}) far from unit scale: "
        f"feature {worst} has mean {float(column.mean()):.4g}, std {float(column.std()):.4g}, "
        f"max {float(column.abs().max()):.4g} over {probe.distinct_samples} samples "
        f"({int((rms > FAR_FROM_UNIT).sum())} of {len(rms)} features above {FAR_FROM_UNIT:g}), "
        "with no normalisation before it: huge pre-activations and gradients make steps "
        "overshoot and units die; standardise the inputs ((x - mean) / std, pixels / 255) "
        "in the dataset or the first line of forward",
        "\n".join(f"feature {i}: mean {float(features[i].mean()):.4g}, std "
                  f"{float(features[i].std()):.4g}, rms {float(rms[i]):.4g}"
                  for i in range(min(len(rms), 32))),
        where_module(ctx, layer.name))


@check("learning.input_scale")
def input_scale(ctx: CheckContext) -> Outcome:
    found = find(ctx)
    layer, normalised = first_layer(ctx)
    if layer is None or layer.features is None:
        return report(found, "no floating input reaches a Linear/Conv/RNN layer")
    rms = float(layer.features.double().pow(2).mean(1).sqrt().max())
    after = " (normalised right after)" if normalised else ""
    return report(found, f"inputs of {layer.name or 'the model'} ({layer.kind}) have feature "
                  f"RMS at most {rms:.3g}{after}")
