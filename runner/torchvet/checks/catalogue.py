"""The check catalogue as data: ids, summaries, defaults. Importing it does not import
torch, so the CLI can validate ``--checks`` and list checks without paying for torch.

The implementations register against these ids with
:func:`torchvet.checks.registry.check`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from ..verdict import matches

MODEL = ("model",)
DATA = ("model", "dataset")
UNITS = ("model", "dataset")  # every unit, data or not


@dataclass(frozen=True)
class CheckMeta:
    """What a check is, independent of its implementation."""

    id: str
    summary: str
    units: tuple[str, ...] = MODEL
    default: bool = True
    needs_data: bool = False
    budget: float = 60.0  # seconds; see torchvet.unit.budget

    @property
    def area(self) -> str:
        return self.id.split(".", 1)[0]


def _catalogue(*entries: CheckMeta) -> dict[str, CheckMeta]:
    return {e.id: e for e in entries}


CATALOGUE: dict[str, CheckMeta] = _catalogue(
    CheckMeta("forward.runs", "the forward pass completes and returns at least one tensor"),
    CheckMeta("forward.finite", "no NaN/Inf in any floating output"),
    CheckMeta("forward.dtype", "floating outputs keep the parameters' dtype"),
    CheckMeta("forward.shape", "declared output_shape holds; else dim 0 follows the batch size"),
    CheckMeta("forward.batch_sizes", "batch sizes 1, 2, 3 run and scale dim 0"),
    CheckMeta("forward.input_mutation", "the forward leaves the caller's input tensors unchanged"),
    # determinism before the comparisons that defer to it (batch_independence, roundtrip)
    CheckMeta("forward.determinism", "two eval passes on the same input agree"),
    CheckMeta(
        "forward.batch_independence",
        "a sample's output does not depend on its batch mates (eval mode)",
    ),
    CheckMeta("forward.warnings", "torch and your code raise no warning in the forward (warns)"),
    CheckMeta("training.loss", "the loss is a finite 0-d tensor that requires grad"),
    CheckMeta(
        "training.loss_sanity",
        "the loss can reach its floor, averages over the batch and uses every output",
    ),
    CheckMeta(
        "training.gradients",
        "every trainable parameter gets a finite, non-zero gradient within 3 steps",
    ),
    CheckMeta("training.update", "every trainable parameter changes within 3 optimizer steps"),
    CheckMeta(
        "training.frozen",
        "frozen parameters are declared frozen, and declared ones stay unchanged",
    ),
    CheckMeta(
        "training.overfit",
        "on one fixed batch the real loss halves, or still falls; a plateau fails only with "
        "a mechanism named",
        budget=120.0,
    ),
    CheckMeta("training.loss_at_init",
              "cross-entropy at init, in train mode, is near ln(C) (warns)"),
    CheckMeta("learning.output_vs_loss",
              "the last activation fits the loss: no probabilities into a logit loss, no "
              "softmax over one unit, a reachable target range, no ReLU on logits"),
    CheckMeta("learning.dead_units", "ReLU layers are not dead (0 for every sample) at init"),
    CheckMeta("learning.saturation",
              "a sigmoid/tanh output is not saturated in its flat tails (warns)"),
    CheckMeta("learning.gradient_flow",
              "gradients neither vanish nor explode along depth at init (warns)"),
    CheckMeta("learning.input_scale",
              "real inputs reach the first layer near unit scale (warns)"),
    CheckMeta("learning.learning_rate",
              "the declared optimizer neither diverges, overshoots nor crawls; no lr-0 "
              "group, no crushing weight decay"),
    CheckMeta("learning.capacity",
              "no 1-unit bottleneck, map collapsed to 1x1 or dropout above 0.8 (warns)"),
    CheckMeta("learning.progress",
              "a short run with your loss, optimizer and data beats the constant baseline "
              "(warns)", budget=120.0),
    CheckMeta(
        "state.roundtrip",
        "state_dict through torch.save/torch.load(weights_only=True) reproduces the outputs",
    ),
    CheckMeta(
        "portability.device",
        "the model still runs when moved to another device (meta; CUDA when available)",
    ),
    CheckMeta("portability.autocast", "a bf16 autocast forward stays finite (fp16 on CUDA)"),
    CheckMeta("export.torch_export", "torch.export.export captures the model", default=False,
              budget=120.0),
    CheckMeta("export.torchscript", "torch.jit.script compiles the model", default=False,
              budget=120.0),
    CheckMeta("export.compile", "torch.compile runs and matches eager; graph breaks counted",
              default=False, budget=300.0),
    CheckMeta("data.length", "len > 0, the last index loads, index len raises IndexError",
              units=DATA, needs_data=True),
    CheckMeta("data.samples", "samples share structure, dtypes and shapes", units=DATA,
              needs_data=True),
    CheckMeta("data.distinct", "the samples are not all identical (__getitem__ uses its index)",
              units=DATA, needs_data=True),
    CheckMeta("data.idempotent", "reading the same index twice gives the same sample",
              units=DATA, needs_data=True),
    CheckMeta("data.finite", "no NaN/Inf in float tensors of the samples", units=DATA,
              needs_data=True),
    CheckMeta("data.labels", "integer labels within [0, num_classes)", units=DATA,
              needs_data=True),
    CheckMeta("data.collate", "the DataLoader yields batches of the declared size, the "
              "partial last one too", units=DATA, needs_data=True),
    CheckMeta("data.reproducible", "two passes seeded alike give identical shuffled batches",
              units=DATA, needs_data=True),
    CheckMeta("data.workers", "dataset and collate_fn pickle; spawn workers match (warns)",
              units=DATA, needs_data=True, budget=60.0),
    CheckMeta("data.leakage", "no validation sample is also a training sample",
              units=DATA, needs_data=True),
    CheckMeta("data.model_fit", "a real batch through the model (and loss) runs, finite",
              needs_data=True),
    # against the unit's snapshot (committed, or built from a base ref); skipped without one
    CheckMeta("regression.signature", "outputs, state_dict keys/shapes and forward match the "
              "snapshot (a rename is named as such)", units=UNITS),
    CheckMeta("regression.outputs", "seeded outputs match the snapshot's values within "
              "a dtype-aware tolerance", units=UNITS),
    CheckMeta("regression.cost", "parameters, FLOPs and activation memory within a share "
              "of the snapshot's (warns)"),
)

AREAS = tuple(dict.fromkeys(meta.area for meta in CATALOGUE.values()))


def select(
    kind: str,
    patterns: Iterable[str] = (),
    *,
    has_data: bool = False,
) -> list[CheckMeta]:
    """Checks for a unit of ``kind``: the defaults, or those the patterns include.

    Patterns prefixed with ``-`` or ``!`` exclude; naming an opt-in check
    (``export.*``) includes it.
    """
    patterns = list(patterns)
    include = [p for p in patterns if not p.startswith(("-", "!"))]
    exclude = [p[1:] for p in patterns if p.startswith(("-", "!"))]
    chosen = []
    for meta in CATALOGUE.values():
        if kind not in meta.units or (meta.needs_data and kind == "model" and not has_data):
            continue
        wanted = any(matches(meta.id, p) for p in include) if include else meta.default
        if wanted and not any(matches(meta.id, p) for p in exclude):
            chosen.append(meta)
    return chosen


# ids a check had before it moved: a user's config or --checks naming one is told the new id
RENAMED = {"forward.probabilities": "learning.output_vs_loss"}


def unknown_patterns(patterns: Iterable[str]) -> list[str]:
    """Patterns that select no known check (likely typos)."""
    return [
        p for p in patterns if not any(matches(i, p.lstrip("-!")) for i in CATALOGUE)
    ]
