"""learning.capacity (warns): the signal is squeezed away before the head.

Three shapes a typo gives a working network: a hidden Linear one unit wide feeding the
next layer (``nn.Linear(2, 1)`` typed for ``nn.Linear(2, 16)``), a fixed-size max-pool
that collapses the feature map to 1x1 (``MaxPool2d(6)`` on a 6x6 map, where ``where``
was the class), and a dropout that drops nearly everything (TensorFlow's
``keep_prob=0.9`` ported as ``nn.Dropout(0.9)``). A 2-unit embedding before a 3-class head
learns fine, and a global average pool (adaptive, or an average over the map) is the
ResNet design: neither is flagged.
"""

from __future__ import annotations

import itertools

from ...results import Status
from ...unit.context import CheckContext
from ...verdict import Outcome
from ..causes.findings import Finding, finder, report, where_module
from ..registry import check
from ..shared.probe import InitProbe, init_probe

HEAVY_DROPOUT = 0.8


def _outputs(ctx: CheckContext, probe: InitProbe) -> int:
    spec = ctx.spec
    if spec is not None and spec.num_classes:
        return int(spec.num_classes)
    weights = [layer for layer in probe.layers if layer.weight]
    return weights[-1].out_width if weights else 0


def _bottleneck(ctx: CheckContext, probe: InitProbe) -> Finding | None:
    weights = [layer for layer in probe.layers if layer.weight]
    outputs = _outputs(ctx, probe)
    for layer, after in itertools.pairwise(weights):
        width_in = layer.in_shape[-1] if layer.in_shape else 0
        if (layer.kind == "Linear" and layer.out_width == 1 and width_in >= 2
                and after.in_shape[-1:] == (1,) and outputs >= 2):
            what = f"the {outputs} classes" if ctx.spec and ctx.spec.num_classes else (
                f"the {outputs} outputs")
            return Finding(
                "learning.capacity", Status.WARNED,
                f"{layer.name or 'a layer'} (Linear {width_in}->1) is one unit wide, narrower "
                f"than {what} the model must produce, and {after.name} reads only that one "
                "number per sample: everything after it sees a single projection of the "
                f"input; widen it (Linear({width_in}, 16)?)",
                where=where_module(ctx, layer.name))
    return None


def _collapsed(ctx: CheckContext, probe: InitProbe) -> Finding | None:
    for op in probe.ops:
        if op.op != "max_pool2d" or len(op.in_shape) < 3 or len(op.out_shape) < 3:
            continue
        if min(op.in_shape[-2:]) >= 3 and op.out_shape[-2:] == (1, 1):
            size = "x".join(map(str, op.in_shape[-2:]))
            return Finding(
                "learning.capacity", Status.WARNED,
                f"a fixed-size max-pool in {op.module or 'the model'} collapses the {size} "
                "feature map to 1x1 before the head: it keeps what each filter saw but not "
                "where, so a class told apart by position cannot be learned; pool less "
                "(MaxPool2d(2)) or use an adaptive pool on purpose",
                where=op.where or where_module(ctx, op.module))
    return None


def _dropout(ctx: CheckContext, probe: InitProbe) -> Finding | None:
    heavy = [op for op in probe.ops if op.op.endswith("dropout") and op.p >= HEAVY_DROPOUT]
    if not heavy:
        return None
    op = max(heavy, key=lambda o: o.p)
    return Finding(
        "learning.capacity", Status.WARNED,
        f"{op.op} in {op.module or 'the model'} drops {op.p:.0%} of the units in training: "
        f"p is the probability to drop, not to keep (TensorFlow's keep_prob={op.p:.2g} is "
        f"nn.Dropout(p={1 - op.p:.2g})), so the layers after it see almost nothing; use p "
        "between 0.1 and 0.5",
        where=op.where or where_module(ctx, op.module))


@finder("learning.capacity")
def find(ctx: CheckContext) -> Finding | None:
    probe = init_probe(ctx)
    return _bottleneck(ctx, probe) or _collapsed(ctx, probe) or _dropout(ctx, probe)


@check("learning.capacity")
def capacity(ctx: CheckContext) -> Outcome:
    probe = init_probe(ctx)
    widths = [layer.out_width for layer in probe.layers if layer.weight]
    narrowest = min(widths[:-1], default=None)
    shown = f"narrowest hidden layer {narrowest} wide" if narrowest else "no hidden layer"
    return report(find(ctx), f"{shown}; no collapsed map, no dropout above "
                  f"{HEAVY_DROPOUT:.0%}")
