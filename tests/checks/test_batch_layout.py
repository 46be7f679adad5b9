"""Forward checks on models whose batch is not dim 0 of every leaf: seq-first language
models, batch-second hidden states, graph batches flattened to (B·N, F)."""

from __future__ import annotations

import torch
from torch import nn

from tests.helpers import assert_status, vet
from torchvet.verdict import Status

FORWARD = ["forward.shape", "forward.batch_sizes", "forward.batch_independence"]
SEQ, VOCAB = 7, 50


class WordLSTM(nn.Module):
    """pytorch/examples-style word LM: (seq, batch) tokens in, (seq·batch, ntoken) out."""

    def __init__(self) -> None:
        super().__init__()
        self.encoder = nn.Embedding(VOCAB, 16)
        self.rnn = nn.LSTM(16, 16, num_layers=2)
        self.decoder = nn.Linear(16, VOCAB)

    def forward(self, tokens: torch.Tensor) -> tuple[torch.Tensor, tuple[torch.Tensor, ...]]:
        output, hidden = self.rnn(self.encoder(tokens))
        return self.decoder(output).view(-1, VOCAB), hidden


class WordTransformer(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.encoder = nn.Embedding(VOCAB, 16)
        self.body = nn.TransformerEncoder(nn.TransformerEncoderLayer(16, 2, 32, dropout=0.1), 2,
                                          enable_nested_tensor=False)
        self.decoder = nn.Linear(16, VOCAB)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        mask = nn.Transformer.generate_square_subsequent_mask(tokens.shape[0])
        return self.decoder(self.body(self.encoder(tokens), mask=mask)).view(-1, VOCAB)


def seq_first(b: int) -> torch.Tensor:
    return torch.randint(0, VOCAB, (SEQ, b))


def test_a_seq_first_lstm_language_model_passes_every_forward_check() -> None:
    results = vet(lambda: {"model": WordLSTM(), "inputs": seq_first}, FORWARD)
    assert_status(results["forward.shape"], Status.PASSED,
                  f"({SEQ}·b, {VOCAB}), batch folded into dim 0 with factor {SEQ}")
    assert_status(results["forward.batch_sizes"], Status.PASSED, "(2, b, 16), batch in dim 1")
    assert_status(results["forward.batch_independence"], Status.PASSED)


def test_a_seq_first_transformer_language_model_passes_every_forward_check() -> None:
    results = vet(lambda: {"model": WordTransformer(), "inputs": seq_first}, FORWARD)
    for name in FORWARD:
        assert_status(results[name], Status.PASSED)


class SeqClassifier(nn.Module):
    """Classifies each sequence from all its LSTM states; ``permute`` False is the bug of
    flattening (T, B, H) with view(B, -1), which takes rows of other samples."""

    def __init__(self, permute: bool) -> None:
        super().__init__()
        self.encoder = nn.Embedding(VOCAB, 16)
        self.rnn = nn.LSTM(16, 16)
        self.head = nn.Linear(SEQ * 16, 3)
        self.permute = permute

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        output, _ = self.rnn(self.encoder(tokens))
        if self.permute:
            output = output.permute(1, 0, 2)
        return self.head(output.reshape(tokens.shape[1], -1))


def test_a_view_after_the_lstm_that_keeps_the_batch_passes() -> None:
    results = vet(lambda: {"model": SeqClassifier(permute=True), "inputs": seq_first}, FORWARD)
    for name in FORWARD:
        assert_status(results[name], Status.PASSED)


def test_a_view_instead_of_a_permute_after_the_lstm_mixes_samples() -> None:
    results = vet(lambda: {"model": SeqClassifier(permute=False), "inputs": seq_first}, FORWARD)
    assert_status(results["forward.batch_independence"], Status.FAILED,
                  "moves both when sample")


class GraphNet(nn.Module):
    """(B, N, F) node features flattened to (B·N, F); ``pool`` mixes nodes across graphs."""

    def __init__(self, pool_over_batch: bool = False) -> None:
        super().__init__()
        self.fc = nn.Linear(4, 3)
        self.pool_over_batch = pool_over_batch

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.fc(x.flatten(0, 1))
        if self.pool_over_batch:  # bug: normalises over every node of every graph
            h = h - h.mean(0, keepdim=True)
        return h


def graphs(b: int) -> torch.Tensor:
    return torch.randn(b, 5, 4)


def test_a_graph_batch_flattened_to_nodes_passes() -> None:
    results = vet(lambda: {"model": GraphNet(), "inputs": graphs}, FORWARD)
    assert_status(results["forward.shape"], Status.PASSED, "batch folded into dim 0 with factor 5")
    assert_status(results["forward.batch_independence"], Status.PASSED)


def test_a_mean_over_every_node_of_the_batch_is_flagged() -> None:
    results = vet(lambda: {"model": GraphNet(pool_over_batch=True), "inputs": graphs}, FORWARD)
    assert_status(results["forward.batch_independence"], Status.FAILED, "mean")


class Transposed(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(4, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x).T


def test_an_output_transposed_away_from_the_inputs_batch_dim_still_fails_shape() -> None:
    results = vet(lambda: {"model": Transposed(), "inputs": lambda b: torch.randn(b, 4)},
                  FORWARD)
    assert_status(results["forward.shape"], Status.FAILED, "dim 0 should be the batch size")
    assert_status(results["forward.batch_independence"], Status.PASSED)


class Pooled(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(4, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x).mean(0)


def test_a_pooled_output_is_judged_by_influence_not_skipped() -> None:
    results = vet(lambda: {"model": Pooled(), "inputs": lambda b: torch.randn(b, 4)},
                  FORWARD)
    assert_status(results["forward.batch_independence"], Status.FAILED, "moves both")


def test_a_declared_batch_dim_overrides_discovery() -> None:
    results = vet(lambda: {"model": Transposed(), "inputs": lambda b: torch.randn(b, 4),
                           "batch_dim": {"output": {"out": 1}}}, ["forward.shape"])
    assert_status(results["forward.shape"], Status.PASSED, "(3, b), batch in dim 1")
