"""The recurrent builder: an RNN, LSTM or GRU over a sequence, summarised by its last step or mean, then a head."""

from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn

from torchtui.engine.config import ModelConfig
from torchtui.engine.errors import ModelError
from torchtui.engine.models import CELLS
from torchtui.engine.models.blocks import mlp_layers
from torchtui.engine.models.tokens import TokenInput


def sequence_shape(shape: tuple[int, ...]) -> tuple[int, int]:
    """(steps, features) a sample of `shape` is read as: a row of F values is F steps of one feature,
    (T, F) is itself, and a (C, H, W) image is H steps (rows) of C·W features."""
    if len(shape) == 1:
        return shape[0], 1
    if len(shape) == 2:
        return shape[0], shape[1]
    if len(shape) == 3:
        return shape[1], shape[0] * shape[2]
    raise ModelError(f"model.kind: rnn cannot read samples of shape {tuple(shape)} as a sequence")


class RecurrentNet(nn.Module):
    """`rnn` reads (N, T, F) batches first-dimension-batch; `mlp` maps the pooled state to the outputs.

    Token ids (N, T) are embedded first (hidden_size wide); on next-token data (`tokens.per_token`) the head
    maps every step's state, giving logits (N, T, vocab)."""

    def __init__(self, cfg: ModelConfig, shape: tuple[int, ...], n_out: int, tokens: TokenInput | None = None):
        super().__init__()
        self.steps, self.features = sequence_shape(shape)
        self.embed = nn.Embedding(tokens.vocab_size, cfg.hidden_size) if tokens is not None else None
        self.per_token = tokens is not None and tokens.per_token
        if self.embed is not None:
            self.features = cfg.hidden_size
        if self.per_token and cfg.bidirectional:
            raise ModelError("model.bidirectional: a next-token model must not read the tokens it predicts "
                             "(set bidirectional: false)")
        self.pooling = cfg.pooling
        self.bidirectional = cfg.bidirectional
        self.hidden_size = cfg.hidden_size
        cell = getattr(nn, CELLS[cfg.cell])
        self.rnn = cell(self.features, cfg.hidden_size, num_layers=cfg.num_layers, batch_first=True,
                        bidirectional=cfg.bidirectional, dropout=cfg.rnn_dropout)
        width = cfg.hidden_size * (2 if cfg.bidirectional else 1)
        self.mlp = nn.Sequential(OrderedDict(mlp_layers(cfg.layers, width, n_out)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.embed is not None:
            out, _ = self.rnn(self.embed(x))
            if self.per_token:
                return self.mlp(out)
        else:
            out, _ = self.rnn(x.reshape(len(x), self.steps, self.features))
        if self.pooling == "mean":
            pooled = out.mean(dim=1)
        elif self.bidirectional:
            # The forward direction has seen everything at the last step, the backward one at the first.
            h = self.hidden_size
            pooled = torch.cat([out[:, -1, :h], out[:, 0, h:]], dim=1)
        else:
            pooled = out[:, -1]
        return self.mlp(pooled)


def recurrent_parameters(cfg: ModelConfig, shape: tuple[int, ...], tokens: TokenInput | None = None) -> int:
    """Parameters of the recurrent layer alone (as torch counts them), for summaries and tests."""
    features = cfg.hidden_size if tokens is not None else sequence_shape(shape)[1]
    gates = {"rnn": 1, "gru": 3, "lstm": 4}[cfg.cell]
    directions = 2 if cfg.bidirectional else 1
    total, width = 0, features
    for _ in range(cfg.num_layers):
        total += directions * gates * cfg.hidden_size * (width + cfg.hidden_size + 2)
        width = cfg.hidden_size * directions
    return total

