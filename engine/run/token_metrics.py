"""Evaluation of next-token models: loss, perplexity, token accuracy and bits per character over a split,
computed in chunks of about EVAL_TOKENS positions (a split's logits, N × T × vocab floats, would not fit),
summed on the device and read back in one host sync."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

EVAL_TOKENS = 1 << 17  # positions per forward pass: 131,072 × a 100-character vocabulary ≈ 50 MB of logits


def tokens_per_char(tokenizer: dict | None) -> float | None:
    """Tokens a tokenizer makes per character of text (bits per character = loss / ln 2 × this); None when not
    known. A char tokenizer makes one per character; others carry the figure measured on their train text."""
    spec = tokenizer or {}
    if spec.get("kind") == "char":
        return 1.0
    value = spec.get("tokens_per_char")
    return float(value) if isinstance(value, (int, float)) and value > 0 else None


def token_sums(model, part, ignore_index: int, label_smoothing: float = 0.0) -> tuple[torch.Tensor, ...]:
    """(summed cross-entropy, correct predictions, counted positions) of a split, as device tensors."""
    loss_sum = correct = count = None
    for xb, yb in part.chunks(max(1, EVAL_TOKENS // max(1, xb_len(part)))):
        out = model(xb).float()
        logits, target = out.reshape(-1, out.shape[-1]), yb.reshape(-1)
        keep = target != ignore_index
        loss = F.cross_entropy(logits, target, ignore_index=ignore_index, label_smoothing=label_smoothing,
                               reduction="sum")
        hits = ((logits.argmax(-1) == target) & keep).sum()
        n = keep.sum()
        loss_sum, correct, count = ((loss, hits, n) if loss_sum is None
                                    else (loss_sum + loss, correct + hits, count + n))
    return loss_sum, correct, count


def xb_len(part) -> int:
    """Positions per sample of a split (its windows' length)."""
    x, _ = part.sample(1)
    return int(x.shape[1]) if x.dim() > 1 else 1


def token_metrics(model, part, ignore_index: int | None, tokenizer: dict | None,
                  label_smoothing: float = 0.0) -> dict:
    """{"loss", "perplexity", "accuracy" (per token), "bpc" (when tokens per character are known)}: plain floats."""
    ignore = -100 if ignore_index is None else ignore_index
    loss_sum, correct, count = token_sums(model, part, ignore, label_smoothing)
    wide = torch.float64 if loss_sum.device.type != "mps" else torch.float32
    # note: this is a CPU-GPU sync point, one per evaluation.
    total, hits, n = torch.stack([loss_sum.to(wide), correct.to(wide), count.to(wide)]).tolist()
    loss = total / n if n else float("nan")
    result = {"loss": loss, "perplexity": math.exp(min(loss, 80.0)) if n else float("nan"),
              "accuracy": hits / n if n else float("nan")}
    per_char = tokens_per_char(tokenizer)
    if per_char is not None:
        result["bpc"] = loss / math.log(2) * per_char
    return result


def unigram_entropy(part, vocab_size: int, limit: int = 20_000_000) -> float:
    """Entropy in nats of the token distribution of a split's targets (its first `limit` positions): the loss of
    the best model that ignores the context, the line a next-token model must get clearly below."""
    counts = torch.zeros(vocab_size, dtype=torch.float64)
    seen = 0
    for _, yb in part.chunks(max(1, EVAL_TOKENS // max(1, xb_len(part)))):
        ids = yb.reshape(-1).cpu()
        counts += torch.bincount(ids[(ids >= 0) & (ids < vocab_size)], minlength=vocab_size).double()
        seen += ids.numel()
        if seen >= limit:
            break
    p = counts[counts > 0] / counts.sum()
    return float(-(p * p.log()).sum())
