"""What the Dataset pane says about text data: the corpus's size, its vocabulary, a short sample of its text
and tokens per character (lines for DataPreviewed.columns, so the protocol carries no new shape)."""

from __future__ import annotations

import torch

from torchtui.engine.data.text.tokenizer import Tokenizer

SAMPLE_CHARS = 160


def _size(n: int) -> str:
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("KB", 1e3)):
        if n >= scale:
            return f"{n / scale:,.1f} {unit}"
    return f"{n:,} bytes"


def _sample(text: str) -> str:
    """A short stretch of text on one line: newlines and tabs shown as ⏎ and ⇥."""
    return text[:SAMPLE_CHARS].replace("\n", "⏎").replace("\t", "⇥")


def corpus_lines(splits, corpus) -> list[str]:
    """Preview lines of a text corpus's Splits (data.source: text) and its Corpus."""
    spec = splits.tokenizer or {}
    tok = Tokenizer.from_spec(spec)
    files = f"{len(corpus.files):,} files, " if len(corpus.files) > 1 else ""
    total = sum(len(getattr(splits, name)) for name in ("train", "val", "test")) * splits.input_shape[0]
    per_window = max(1, round(SAMPLE_CHARS * spec.get("tokens_per_char", 1.0) / splits.input_shape[0]) + 1)
    x, _ = splits.train.windows(torch.arange(min(len(splits.train), per_window)))  # the corpus's first text
    lines = [f"corpus: {files}{_size(corpus.size)} ({corpus.where})",
             f"vocabulary: {tok.vocab_size:,} {tok.kind} tokens · {spec.get('tokens_per_char', 1.0):.3f} tokens per "
             f"character · {total:,} tokens in windows of {splits.input_shape[0]:,}"]
    if len(x):
        lines.append(f"sample: {_sample(tok.decode(x.reshape(-1).tolist()))}")
    return lines


def column_lines(splits) -> list[str]:
    """Preview lines of a CSV whose text columns were tokenised (its encoder is a text encoder)."""
    spec = splits.tokenizer or {}
    tok = Tokenizer.from_spec(spec)
    x = splits.x_train
    filled = (x != tok.pad_id).sum(1).float() if len(x) else x.new_zeros(1).float()
    width = splits.input_shape[0]
    cut = int((filled >= width).sum())
    lines = [f"text column(s) {', '.join(splits.feature_names)}: {tok.vocab_size:,} {tok.kind} tokens "
             f"(fitted on the train rows) · {float(filled.mean()):.1f} tokens per row on average, {cut:,} of "
             f"{len(x):,} cut at block_size {width}"]
    if len(x):
        lines.append(f"sample: {_sample(tok.decode(x[0].tolist()))}")
    return lines
