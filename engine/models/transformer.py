"""The transformer builder: a GPT-style decoder (next-token logits per position) or an encoder pooled to one
output per sequence, pre-norm, from torch's own layers and `F.scaled_dot_product_attention`.

On token data (int64 ids) the input is a token embedding, tied to the output layer when the outputs are the
vocabulary (nanoGPT, Press & Wolf 2017); on float sequences (T, F) it is a linear projection of each step.
Positions are a learned embedding of `block_size` = the data's sequence length.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from torchtui.engine.config import ModelConfig
from torchtui.engine.errors import ModelError
from torchtui.engine.models.tokens import TokenInput


class SelfAttention(nn.Module):
    """Multi-head self-attention; `scaled_dot_product_attention` picks flash / memory-efficient kernels on GPUs."""

    def __init__(self, d_model: int, n_head: int, dropout: float, causal: bool):
        super().__init__()
        self.n_head, self.dropout, self.causal = n_head, dropout, causal
        self.qkv = nn.Linear(d_model, 3 * d_model)
        self.proj = nn.Linear(d_model, d_model)
        self.resid_drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        b, t, c = x.shape
        q, k, v = (z.view(b, t, self.n_head, c // self.n_head).transpose(1, 2)
                   for z in self.qkv(x).split(c, dim=2))
        # is_causal without a mask: the kernels that skip the masked half (flash) need it said this way.
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=self.dropout if self.training else 0.0,
                                           is_causal=self.causal and mask is None)
        return self.resid_drop(self.proj(y.transpose(1, 2).reshape(b, t, c)))


class Block(nn.Module):
    """Pre-norm: x + attn(ln(x)), then x + mlp(ln(x)) (GPT-2's order, which trains without warm-up tricks)."""

    def __init__(self, d_model: int, n_head: int, d_ff: int, dropout: float, causal: bool):
        super().__init__()
        self.ln1 = nn.LayerNorm(d_model)
        self.attn = SelfAttention(d_model, n_head, dropout, causal)
        self.ln2 = nn.LayerNorm(d_model)
        self.mlp = nn.Sequential(nn.Linear(d_model, d_ff), nn.GELU(), nn.Linear(d_ff, d_model), nn.Dropout(dropout))

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        x = x + self.attn(self.ln1(x), mask)
        return x + self.mlp(self.ln2(x))


class Transformer(nn.Module):
    """Decoder (causal, logits (N, T, outputs)) when `tokens.per_token`, else encoder + mean pooling (N, outputs)."""

    def __init__(self, cfg: ModelConfig, shape: tuple[int, ...], n_out: int, tokens: TokenInput | None = None):
        super().__init__()
        d, self.tokens = cfg.d_model, tokens
        if d % cfg.n_head:
            raise ModelError(f"model.d_model: {d} must be a multiple of model.n_head ({cfg.n_head})")
        self.block_size = shape[0]
        self.causal = tokens is not None and tokens.per_token
        if tokens is not None:
            if len(shape) != 1:
                raise ModelError(f"model.kind: transformer reads token ids as (T,) sequences, got {tuple(shape)}")
            self.embed = nn.Embedding(tokens.vocab_size, d)
        else:
            features = math.prod(shape[1:]) if len(shape) > 1 else 1
            self.features = features
            self.embed = nn.Linear(features, d)
        self.pos = nn.Embedding(self.block_size, d)
        self.drop = nn.Dropout(cfg.dropout)
        self.blocks = nn.ModuleList(Block(d, cfg.n_head, cfg.d_ff or 4 * d, cfg.dropout, self.causal)
                                    for _ in range(cfg.n_layer))
        self.ln_f = nn.LayerNorm(d)
        self.head = nn.Linear(d, n_out, bias=not self.causal)
        if self.causal and cfg.tie_embeddings and n_out == tokens.vocab_size:
            self.head.weight = self.embed.weight
        self._init_weights(cfg.n_layer)

    def _init_weights(self, n_layer: int) -> None:
        """GPT-2's: N(0, 0.02) weights, zero biases, residual projections scaled by 1/sqrt(2·layers)."""
        for module in self.modules():
            if isinstance(module, (nn.Linear, nn.Embedding)):
                nn.init.normal_(module.weight, 0.0, 0.02)
            if isinstance(module, nn.Linear) and module.bias is not None:
                nn.init.zeros_(module.bias)
        for name, p in self.named_parameters():
            if name.endswith("proj.weight") or name.endswith("mlp.2.weight"):
                nn.init.normal_(p, 0.0, 0.02 / math.sqrt(2 * n_layer))

    def summary_lines(self) -> list[str]:
        """The Model pane's per-block summary: what one block holds, and where the rest of the parameters are."""
        def count(module) -> int:
            return sum(p.numel() for p in module.parameters())

        block = self.blocks[0] if len(self.blocks) else None
        kind = "decoder (causal, a logit per position)" if self.causal else "encoder (mean-pooled over the sequence)"
        lines = [f"Transformer {kind}: {len(self.blocks)} pre-norm blocks, block size {self.block_size}"]
        if block is not None:
            parts = (f"attention {count(block.attn):,}, MLP {count(block.mlp):,}, "
                     f"norms {count(block.ln1) + count(block.ln2):,}")
            lines.append(f"Per block: {count(block):,} params ({parts}), {block.attn.n_head} heads")
        tied = self.head.weight is self.embed.weight
        lines.append(f"Embeddings {count(self.embed) + count(self.pos):,} (tokens + positions); head "
                     + ("tied to the token embedding" if tied else f"{count(self.head):,}"))
        return lines

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        t = x.shape[1]
        if t > self.block_size:
            raise ValueError(f"a sequence of {t} is longer than the block size {self.block_size}")
        if self.tokens is None:
            h = self.embed(x.reshape(len(x), t, self.features))
        else:
            h = self.embed(x)
        h = self.drop(h + self.pos(torch.arange(t, device=x.device)))
        keep = None
        if not self.causal and self.tokens is not None and self.tokens.pad_id is not None:
            keep = x != self.tokens.pad_id  # (N, T): real tokens; padding is neither attended to nor pooled
        # A sequence of padding only would attend to nothing (a softmax over no keys is NaN): let it see all.
        mask = (keep | ~keep.any(1, keepdim=True))[:, None, None, :] if keep is not None else None
        for block in self.blocks:
            h = block(h, mask)
        h = self.ln_f(h)
        if self.causal:
            return self.head(h)
        if keep is None:
            return self.head(h.mean(dim=1))
        weights = keep.unsqueeze(-1).to(h.dtype)
        return self.head((h * weights).sum(1) / weights.sum(1).clamp_min(1.0))


def build_transformer(cfg: ModelConfig, shape: tuple[int, ...], n_out: int,
                      tokens: TokenInput | None = None) -> nn.Module:
    return Transformer(cfg, shape, n_out, tokens)


def transformer_parameters(cfg: ModelConfig, shape: tuple[int, ...], n_out: int, tokens: TokenInput | None) -> int:
    """Parameters the builder allocates (as torch counts them, a tied head once), computed without allocating."""
    d, ff = cfg.d_model, cfg.d_ff or 4 * cfg.d_model
    causal = tokens is not None and tokens.per_token
    embed = tokens.vocab_size * d if tokens is not None else (math.prod(shape[1:]) if len(shape) > 1 else 1) * d + d
    block = 2 * 2 * d + (3 * d * d + 3 * d) + (d * d + d) + (d * ff + ff) + (ff * d + d)
    tied = causal and cfg.tie_embeddings and tokens is not None and n_out == tokens.vocab_size
    head = 0 if tied else d * n_out + (0 if causal else n_out)
    return embed + shape[0] * d + cfg.n_layer * block + 2 * d + head
