"""Bare Hugging Face and Lightning models through `torchvet run` (isolated workers, as
users run it): inputs and training step come from the models themselves, and the
verdicts say so."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from tests.helpers import run_cli

pytestmark = pytest.mark.slow
pytest.importorskip("transformers")
pytest.importorskip("lightning")

MODELS = '''\
import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset
from transformers import GPT2Config, GPT2LMHeadModel


def gpt2():
    return GPT2LMHeadModel(GPT2Config(n_layer=1, n_embd=32, n_head=2, n_positions=32,
                                      vocab_size=100, bos_token_id=0, eos_token_id=0))


class Lit(L.LightningModule):
    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 3))

    def forward(self, x):
        return self.net(x)

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = F.cross_entropy(self(x), y)
        self.log("loss", loss)
        return loss

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)

    def train_dataloader(self):
        g = torch.Generator().manual_seed(0)
        data = TensorDataset(torch.randn(16, 8, generator=g), torch.randint(0, 3, (16,)))
        return DataLoader(data, batch_size=4, num_workers=2)


def lit():
    return Lit()
'''


def test_bare_library_models_are_checked_with_their_own_inputs_and_step(tmp_path: Path
                                                                        ) -> None:
    (tmp_path / "demo").mkdir()
    (tmp_path / "demo" / "__init__.py").write_text("")
    (tmp_path / "demo" / "models.py").write_text(MODELS)
    (tmp_path / "pyproject.toml").write_text(textwrap.dedent("""\
        [project]
        name = "demo"
        version = "0"
        [project.entry-points."torchvet.models"]
        gpt2 = "demo.models:gpt2"
        lit = "demo.models:lit"
        """))
    out = tmp_path / "r.json"
    proc = run_cli("run", str(tmp_path), "--checks", "forward.runs,training", "--json",
                   str(out), env={"HF_HUB_OFFLINE": "1"})
    assert proc.returncode == 0, proc.stdout[-3000:]
    verdicts = {(u["name"], r["id"]): r for u in json.loads(out.read_text())["reports"]
                for r in u["results"]}
    assert "GPT2LMHeadModel.dummy_inputs" in verdicts[("gpt2", "forward.runs")]["message"]
    assert "labels=input_ids" in verdicts[("gpt2", "training.loss")]["message"]
    assert verdicts[("gpt2", "training.overfit")]["status"] == "passed"
    lit_loss = verdicts[("lit", "training.loss")]["message"]
    assert "Lit.training_step on a train_dataloader() batch" in lit_loss
    assert "optimizer: Lit.configure_optimizers() (SGD)" in lit_loss
    outputs = {u["name"]: u["output"] for u in json.loads(out.read_text())["reports"]}
    assert "self.log()" not in outputs["lit"]  # Lightning's no-Trainer warning is silenced
