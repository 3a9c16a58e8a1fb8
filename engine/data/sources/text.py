"""Text corpora (data.source: text): a file or a folder of text files, tokenised once into the token cache
(engine/data/text/corpus.py) and cut into next-token windows per split (engine/data/text/windows.py)."""

from __future__ import annotations

import numpy as np
import torch

from torchtui.engine.config import DataConfig
from torchtui.engine.data import datasets as ds
from torchtui.engine.data.text import corpus as text_corpus
from torchtui.engine.data.text.windows import WindowPart
from torchtui.engine.errors import DataError


def read(cfg: DataConfig, device=None):
    """(Splits, []): the corpus's splits: task 'tokens', int64 (B, block_size) windows, targets shifted by one."""
    from torchtui.engine.data.splits import Splits

    corpus = text_corpus.find(cfg.path, cfg.files)
    tokens = text_corpus.tokenise(corpus, cfg.tokenizer, cfg.vocab_size, cfg.val_fraction, cfg.test_fraction)
    parts = _parts(tokens, cfg, device)
    small = [name for name in ("train", "val") if len(parts[name]) == 0 and (name == "train" or cfg.val_fraction)]
    if small:
        n = tokens.bounds[small[0]][1] - tokens.bounds[small[0]][0]
        raise DataError(f"data.block_size: {cfg.block_size:,} tokens per window is more than the {small[0]} split's "
                        f"{n:,} tokens hold (a window needs block_size + 1); lower block_size or use more text")
    tok = tokens.tokenizer
    n_tokens = tokens.bounds["test"][1]
    notes = [] if tokens.reused else [f"data.tokenizer: {corpus.size:,} bytes tokenised into {n_tokens:,} {tok.kind} "
                                      f"tokens, cached in {tokens.bin.parent}"]
    return Splits(task="tokens", **parts, input_shape=(cfg.block_size,), n_classes=tok.vocab_size, n_targets=1,
                  class_names=[], feature_names=[], notes=notes,
                  tokenizer={**tok.spec(), "tokens_per_char": tokens.tokens_per_char()}), []


def _parts(tokens: text_corpus.Tokens, cfg: DataConfig, device) -> dict[str, WindowPart]:
    """Each split's windows: its tokens in memory (as int32, on the device later) when they fit the budget,
    else read from the cache per batch."""
    n_tokens = tokens.bounds["test"][1]
    in_memory = not cfg.stream and n_tokens * 4 <= ds.memory_budget(device)
    stream = tokens.memmap() if in_memory else None
    parts = {}
    for name, (lo, hi) in tokens.bounds.items():
        if in_memory:
            held = torch.from_numpy(np.asarray(stream[lo:hi]).astype(np.int32))
            parts[name] = WindowPart(cfg.block_size, tokens=held, limit=cfg.limit)
        else:
            parts[name] = WindowPart(cfg.block_size, file=(str(tokens.bin), lo, hi, tokens.dtype.str), limit=cfg.limit)
    return parts
