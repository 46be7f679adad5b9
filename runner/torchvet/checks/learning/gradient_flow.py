"""learning.gradient_flow: the gradient reaches the first layers at a usable size.

From the probe's one backward at init: along the Linear/Conv/RNN layers in execution
order, the relative gradient ||grad|| / ||weight|| of the first layer against the last
(vanishing: the first layers barely learn), and the scale of the activations along depth
(exploding: each layer multiplies the signal, and the gradient with it).
"""

from __future__ import annotations

import math
from typing import Any

from ...results import Status
from ...unit.context import CheckContext
from ...verdict import Outcome
from ..causes.findings import Finding, finder, layer_table, report, table_text, where_module
from ..registry import check
from ..shared.probe import InitProbe, LayerCall, init_probe

VANISHING = 1e-5  # first layer's relative gradient against the last layer's (corpora:
# bugs at most 1.4e-6, healthy non-adversarial models at least 5.8e-4, under 5 seeds)
MIN_DEPTH = 4  # weight layers a "along depth" verdict needs
EXPLODING = 1e3  # growth of the activation scale from the first layer's input
EXPLODED_RMS = 100.0  # and the activations' absolute scale
RECURRENT = {"RNN", "LSTM", "GRU"}
RECURRENT_GAIN = 30.0  # a recurrent layer's output scale against its input's (and absolute)


def relative_gradients(probe: InitProbe) -> list[tuple[LayerCall, float]]:
    """(layer, ||grad|| / ||weight||) for the weight layers that got a gradient."""
    chain = []
    for layer in probe.layers:
        if not layer.weight:
            continue
        names = [n for n, owner in probe.owner.items() if owner == layer.name]
        grad = math.sqrt(sum(probe.grad_norms.get(n, 0.0) ** 2 for n in names))
        weight = math.sqrt(sum(probe.weight_norms.get(n, 0.0) ** 2 for n in names))
        if grad > 0 and weight > 0 and math.isfinite(grad):
            chain.append((layer, grad / weight))
    return chain


def _explosion(probe: InitProbe) -> tuple[LayerCall, LayerCall, float] | None:
    """(first layer, loudest layer, growth) when the activations explode: along the chain
    of layers, or inside one recurrent layer (its state multiplied at every step)."""
    weights = [layer for layer in probe.layers if layer.weight and math.isfinite(layer.in_rms)
               and layer.in_rms > 0 and math.isfinite(layer.out_rms)]
    for layer in weights:
        gain = layer.out_rms / layer.in_rms
        if layer.kind in RECURRENT and gain > RECURRENT_GAIN and layer.out_rms > RECURRENT_GAIN:
            return layer, layer, gain
    if not weights:
        return None
    peak = max(weights, key=lambda layer: layer.out_rms)
    growth = peak.out_rms / weights[0].in_rms
    if growth > EXPLODING and peak.out_rms > EXPLODED_RMS:
        return weights[0], peak, growth
    return None


@finder("learning.gradient_flow")
def find(ctx: CheckContext) -> Finding | None:
    probe = init_probe(ctx)
    table = layer_table(probe)
    exploded = _explosion(probe)
    if exploded is not None:
        return _exploding(ctx, probe, *exploded, table)
    chain = relative_gradients(probe)
    if len(chain) < MIN_DEPTH or probe.toggled:
        return None  # too shallow, or two networks trained against each other (a GAN)
    (first, r_first), (last, r_last) = chain[0], chain[-1]
    if r_first >= VANISHING * r_last:
        return None
    return Finding(
        "learning.gradient_flow", Status.WARNED,
        f"gradients vanish along depth: across {len(chain)} layers the relative gradient "
        f"||grad||/||weight|| falls from {r_last:.2g} at {last.name or 'the last layer'} to "
        f"{r_first:.2g} at {first.name or 'the first layer'} ({r_first / r_last:.1g} of it), "
        "so the first layers barely learn; a stack of sigmoid/tanh layers or a tiny init "
        "shrinks it at every layer — use ReLU/GELU with He init, Xavier init for tanh, "
        "normalisation or residual connections",
        table_text(table), where_module(ctx, first.name), {"table": table})


def _exploding(ctx: CheckContext, probe: InitProbe, start: LayerCall, peak: LayerCall,
               growth: float, table: dict[str, Any]) -> Finding:
    weights = [layer for layer in probe.layers if layer.weight]
    layers = max(1, weights.index(peak) - weights.index(start) + 1)
    where = "along depth" if peak is not start else f"through the steps of {peak.name}"
    return Finding(
        "learning.gradient_flow", Status.WARNED,
        f"activations and gradients explode {where}: the signal grows {growth:.3g}x from "
        f"{start.in_rms:.3g} (input of {start.name or 'the model'}) to {peak.out_rms:.3g} "
        f"(output of {peak.name or 'the model'}), about x{growth ** (1 / layers):.3g} per "
        f"layer, and the loss at init is {probe.loss:.4g}: the weights are initialised too "
        "large (e.g. N(0, 1)) or a recurrent weight has a spectral radius above 1; use "
        "He/Xavier init (orthogonal for recurrent weights), normalisation, or gradient "
        "clipping",
        table_text(table), where_module(ctx, peak.name), {"table": table})


@check("learning.gradient_flow")
def gradient_flow(ctx: CheckContext) -> Outcome:
    found = find(ctx)
    probe = init_probe(ctx)
    chain = relative_gradients(probe)
    if len(chain) >= 2:
        ratio = chain[0][1] / chain[-1][1]
        summary = (f"{len(chain)} layers: the first layer's relative gradient is "
                   f"{ratio:.2g}x the last's")
    else:
        summary = f"{len(chain)} weight layer(s) with a gradient: no depth to judge"
    return report(found, summary, {"table": layer_table(probe)})
