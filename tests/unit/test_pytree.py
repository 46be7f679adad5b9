"""unit.pytree: outputs as trees of tensors, each leaf with a path a verdict can name."""

from __future__ import annotations

from collections import OrderedDict, namedtuple
from dataclasses import dataclass

import torch

from torchvet.unit.pytree import leaves, map_tensors, primary_leaf, structure

Pair = namedtuple("Pair", ["logits", "aux"])


@dataclass
class Output:
    loss: torch.Tensor | None
    logits: torch.Tensor


class ModelOutput(OrderedDict):
    """Like transformers' ModelOutput: a dict and a dataclass at once."""


def test_pytree_paths_and_structure() -> None:
    t = torch.zeros(2, 3)
    tree = {"a": (t, [t]), "b": Pair(t, t), "c": Output(None, t), "n": 3}
    paths = [p for p, _ in leaves(tree)]
    assert paths == ['out["a"][0]', 'out["a"][1][0]', 'out["b"].logits', 'out["b"].aux',
                     'out["c"].logits']
    doubled = map_tensors(tree, lambda x: x + 1)
    assert isinstance(doubled["b"], Pair) and isinstance(doubled["c"], Output)
    assert float(doubled["c"].logits.sum()) == 6.0 and doubled["n"] == 3
    assert "Pair" not in structure(t) and structure([t]) == "list[Tensor]"


def test_primary_leaf_prefers_logits() -> None:
    out = {"hidden": torch.zeros(2, 8), "logits": torch.zeros(2, 3), "loss": torch.tensor(1.0)}
    assert primary_leaf(out)[0] == 'out["logits"]'
    mo = ModelOutput(loss=torch.tensor(0.5), logits=torch.zeros(2, 3))
    assert primary_leaf(mo)[0] == 'out["logits"]'
    assert primary_leaf((torch.tensor(1.0), torch.zeros(2, 5)))[0] == "out[1]"


