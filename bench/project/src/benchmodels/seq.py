"""Recurrent models."""

from __future__ import annotations

import torch
from torch import nn


class LSTMClassifier(nn.Module):
    def __init__(self, vocab: int = 1000, dim: int = 64, classes: int = 5) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab, dim)
        self.lstm = nn.LSTM(dim, dim, num_layers=2, batch_first=True)
        self.head = nn.Linear(dim, classes)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        out, _ = self.lstm(self.embed(tokens))
        return self.head(out[:, -1])


def make_lstm_classifier() -> dict:
    return {
        "model": LSTMClassifier(),
        "inputs": lambda b: torch.randint(0, 1000, (b, 48)),
        "loss": nn.CrossEntropyLoss(),
        "num_classes": 5,
        # oneDNN has no bfloat16 LSTM kernel on CPUs without native bf16 (this runner's)
        "skip": {"portability.autocast": "no bf16 LSTM kernel on this CPU"},
    }


class GRURegressor(nn.Module):
    def __init__(self, features: int = 8, hidden: int = 48) -> None:
        super().__init__()
        self.gru = nn.GRU(features, hidden, batch_first=True, bidirectional=True)
        self.head = nn.Linear(2 * hidden, 1)
        self.example_inputs = (torch.randn(2, 40, features),)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out, _ = self.gru(x)
        return self.head(out).squeeze(-1)


def make_gru_regressor() -> nn.Module:
    return GRURegressor()
