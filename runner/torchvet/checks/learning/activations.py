"""learning.dead_units and learning.saturation: activations that pass no gradient.

- dead units: a ReLU whose output is 0 for every sample of a real batch passes no
  gradient back; a layer where every unit is dead stops all learning before it (failed),
  one where nearly all are is a smell (warned).
- saturation: a sigmoid/tanh output whose inputs sit in the flat tails has a derivative
  near 0, so the loss barely moves the model (warned). Saturated *hidden* units still act
  as step features for a trainable head, so only the activations that feed the loss are
  judged; the others are in the table.
"""

from __future__ import annotations

from collections.abc import Callable

from ...results import Status
from ...unit.context import CheckContext
from ...verdict import Outcome
from ..causes.findings import Finding, finder, layer_table, report, table_text, where_module
from ..registry import check
from ..shared.probe import SQUASHING, ActivationCall, init_probe

DEAD_WARN = 0.9  # share of a layer's units dead on the probe batch
SATURATED_WARN = 0.5  # share of an output sigmoid/tanh's inputs in the flat tails
MIN_SAMPLES = 8  # distinct samples a dead/alive reading needs (fewer: wide layers only)


def _where(ctx: CheckContext, call: ActivationCall) -> tuple[str, int] | None:
    return call.where or where_module(ctx, call.module)


@finder("learning.dead_units")
def find_dead(ctx: CheckContext) -> Finding | None:
    probe = init_probe(ctx)
    enough = probe.distinct_samples >= MIN_SAMPLES
    judged = [a for a in probe.activations if a.dead is not None and a.in_model
              and (enough or a.units >= MIN_SAMPLES)]
    if not judged:
        return None
    worst = max(judged, key=lambda a: (a.dead or 0.0, -a.order))
    table = layer_table(probe)
    if worst.dead == 1.0:
        return Finding(
            "learning.dead_units", Status.FAILED,
            f"every one of the {worst.units} units of {worst.label} outputs 0 for all "
            f"{probe.distinct_samples} samples of a real batch: the layer is dead, so no "
            "gradient reaches anything before it; its pre-activations are all negative — "
            "look at the bias init (a large negative constant?), the input scale, or a "
            "learning rate that pushed them there; use He init, zero biases or LeakyReLU",
            table_text(table), _where(ctx, worst), {"table": table})
    if enough and (worst.dead or 0.0) >= DEAD_WARN:
        return Finding(
            "learning.dead_units", Status.WARNED,
            f"{worst.dead:.0%} of the {worst.units} units of {worst.label} output 0 for all "
            f"{probe.distinct_samples} samples: dead ReLUs pass no gradient, so the layer "
            "learns with a fraction of its width; check the bias init and the input scale, "
            "or use LeakyReLU/GELU",
            table_text(table), _where(ctx, worst), {"table": table})
    return None


@check("learning.dead_units")
def dead_units(ctx: CheckContext) -> Outcome:
    return _summary(ctx, find_dead, "dead", "no ReLU-family activation to check",
                    "{n} ReLU activation(s): at most {worst:.0%} of a layer's units dead on "
                    "{samples} samples")


def _summary(ctx: CheckContext, find: Callable[[CheckContext], Finding | None], measure: str,
             none: str, healthy: str) -> Outcome:
    """The finder's finding, else a pass stating the worst of what the probe measured
    (``measure``: the activation's attribute) in ``healthy``; the layer table as evidence."""
    found = find(ctx)
    probe = init_probe(ctx)
    measured = [v for v in (getattr(a, measure) for a in probe.activations) if v is not None]
    text = (healthy.format(n=len(measured), worst=max(measured),
                           samples=probe.distinct_samples) if measured else none)
    return report(found, text, {"table": layer_table(probe)})


@finder("learning.saturation")
def find_saturated(ctx: CheckContext) -> Finding | None:
    probe = init_probe(ctx)
    outputs = [a for a in probe.activations if a.saturated is not None and a.is_output]
    fed = {id(c.source) for c in probe.losses if c.source is not None}
    outputs += [a for a in probe.activations
                if a.saturated is not None and id(a) in fed and a not in outputs]
    worst = max(outputs, key=lambda a: a.saturated or 0.0, default=None)
    if worst is None or (worst.saturated or 0.0) < SATURATED_WARN:
        return None
    flat = SQUASHING.get(worst.op, 4.5)
    table = layer_table(probe)
    return Finding(
        "learning.saturation", Status.WARNED,
        f"{worst.saturated:.0%} of the inputs of the output {worst.op} at {worst.label} are "
        f"beyond +-{flat:g}, where its derivative is under 5 % of its peak: the output is "
        "saturated at its limits, so the loss's gradient barely reaches the model; scale "
        "down the init of the layer before it (Xavier/default init), normalise its input, or "
        "use a loss on logits (BCEWithLogitsLoss) instead of a squashed output",
        table_text(table), _where(ctx, worst), {"table": table})


@check("learning.saturation")
def saturation(ctx: CheckContext) -> Outcome:
    return _summary(ctx, find_saturated, "saturated", "no sigmoid/tanh activation to check",
                    "{n} sigmoid/tanh activation(s): at most {worst:.0%} of inputs in the flat "
                    "tails")
