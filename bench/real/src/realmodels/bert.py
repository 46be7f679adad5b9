"""BERT-base in plain torch (110M parameters): post-norm encoder, learned positions,
token types, a tanh pooler and a 2-class head, as fine-tuned for classification."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

VOCAB, DIM, LAYERS, HEADS, FFN, POSITIONS, LENGTH = 30522, 768, 12, 12, 3072, 512, 128


class EncoderLayer(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.qkv = nn.Linear(DIM, 3 * DIM)
        self.attn_out = nn.Linear(DIM, DIM)
        self.ln1 = nn.LayerNorm(DIM, eps=1e-12)
        self.fc = nn.Linear(DIM, FFN)
        self.out = nn.Linear(FFN, DIM)
        self.ln2 = nn.LayerNorm(DIM, eps=1e-12)
        self.drop = nn.Dropout(0.1)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        b, t, d = x.shape
        q, k, v = self.qkv(x).split(d, dim=2)
        q, k, v = (z.view(b, t, HEADS, d // HEADS).transpose(1, 2) for z in (q, k, v))
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask,
                                           dropout_p=0.1 if self.training else 0.0)
        x = self.ln1(x + self.drop(self.attn_out(y.transpose(1, 2).reshape(b, t, d))))
        return self.ln2(x + self.drop(self.out(F.gelu(self.fc(x)))))


class BertClassifier(nn.Module):
    def __init__(self, classes: int = 2) -> None:
        super().__init__()
        self.tokens = nn.Embedding(VOCAB, DIM, padding_idx=0)
        self.positions = nn.Embedding(POSITIONS, DIM)
        self.types = nn.Embedding(2, DIM)
        self.ln = nn.LayerNorm(DIM, eps=1e-12)
        self.drop = nn.Dropout(0.1)
        self.layers = nn.ModuleList(EncoderLayer() for _ in range(LAYERS))
        self.pooler = nn.Linear(DIM, DIM)
        self.classifier = nn.Linear(DIM, classes)
        for module in self.modules():
            if isinstance(module, (nn.Linear, nn.Embedding)):
                nn.init.normal_(module.weight, std=0.02)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        t = input_ids.shape[1]
        h = (self.tokens(input_ids) + self.positions(torch.arange(t, device=input_ids.device))
             + self.types(torch.zeros_like(input_ids)))
        h = self.drop(self.ln(h))
        mask = attention_mask[:, None, None, :].bool()
        for layer in self.layers:
            h = layer(h, mask)
        return self.classifier(torch.tanh(self.pooler(h[:, 0])))


def _inputs(b: int) -> dict:
    ids = torch.randint(1, VOCAB, (b, LENGTH))
    mask = torch.ones(b, LENGTH, dtype=torch.long)
    mask[:, LENGTH - 16:] = 0  # padding at the end, as a tokenizer pads
    return {"input_ids": ids * mask, "attention_mask": mask}


def make_bert_base() -> dict:
    return {
        "model": BertClassifier(),
        "inputs": _inputs,
        "loss": nn.CrossEntropyLoss(),
        "num_classes": 2,
    }
