"""Free-text columns of a CSV as padded token-id sequences, for a sequence classifier or regressor.

A column holds free text (not categories, not ids) when data.text_columns names it, or when its texts are
long (three words or more on average) and mostly distinct: more than 100 of them, or over half the rows.
Its tokenizer is fitted on the train rows only (the char vocabulary, or the BPE merges), with a <pad> id
(and an <unk> id for characters the train rows never had), and every row becomes data.block_size ids: its
first block_size tokens, padded on the right with the pad id. Several text columns are joined, a newline
between them. The fitted encoder is a plain dict in checkpoints, so `predict` encodes new rows alike.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from torchtui.engine.data.tabular import MAX_CATEGORIES, Column
from torchtui.engine.data.text import tokenizer as tk
from torchtui.engine.errors import DataError

MIN_WORDS = 3  # mean words per distinct text from which a column reads as free text


def is_free_text(col: Column) -> bool:
    """Long strings with many distinct values (the detection when data.text_columns is not given)."""
    if col.kind != "category" or not col.texts:
        return False
    present = int((~col.missing).sum())
    distinct = col.distinct()
    words = sum(t.count(" ") + 1 for t in col.texts) / len(col.texts)
    return words >= MIN_WORDS and distinct > min(MAX_CATEGORIES, present / 2)


def row_texts(columns: list[Column], rows=None) -> list[str]:
    """Each row's text (its text columns joined by a newline; a missing cell is empty)."""
    n = len(columns[0]) if rows is None else len(rows)
    index = np.arange(n) if rows is None else np.asarray(rows, dtype=np.int64)
    per_column = []
    for col in columns:
        if col.kind == "category":
            table = np.array(list(col.texts) + [""], dtype=object)
            codes = col.codes[index]
            per_column.append(table[np.where(codes >= 0, codes, len(col.texts))].tolist())
        else:  # numbers in a text column (new inputs to predict): their text as written
            per_column.append(["" if col.missing[i] else col.text(int(i)) for i in index])
    return ["\n".join(cells) for cells in zip(*per_column)] if len(per_column) > 1 else per_column[0]


@dataclass
class TextTable:
    """The text columns of a CSV; x of its Arrays holds row numbers until the train rows fit a tokenizer."""

    columns: list[Column]
    target: str
    tokenizer: str
    vocab_size: int
    block_size: int

    @property
    def cells(self) -> dict[str, Column]:
        return {col.name: col for col in self.columns}

    def fit(self, train_rows) -> TextEncoder:
        texts = row_texts(self.columns, train_rows)
        if self.tokenizer == "char":
            counts = None
            for text in texts:
                counts = tk.count_chars(text, counts)
            tok = tk.CharTokenizer.from_counts(counts if counts is not None else np.zeros(1), padded=True)
        else:
            tok = tk.build(self.tokenizer, train_texts=texts, vocab_size=self.vocab_size, padded=True)
        return TextEncoder([c.name for c in self.columns], tok, self.block_size, self.target)


class TextEncoder:
    """Turns the text columns' rows into an (N, block_size) int64 array of ids padded with the pad id."""

    def __init__(self, names: list[str], tok: tk.Tokenizer, block_size: int, target: str = ""):
        self.names, self.tokenizer, self.block_size, self.target = names, tok, block_size, target

    @property
    def feature_names(self) -> list[str]:
        return list(self.names)

    @property
    def source_columns(self) -> list[str]:
        return list(self.names)

    def transform(self, columns: dict[str, Column], rows=None) -> np.ndarray:
        missing = [name for name in self.names if name not in columns]
        if missing:
            raise DataError(f"data.path: no text column '{missing[0]}' (the run was trained on {self.names})")
        texts = row_texts([columns[name] for name in self.names], rows)
        return self.encode(texts)

    def encode(self, texts: list[str]) -> np.ndarray:
        tok, width = self.tokenizer, self.block_size
        if isinstance(tok, tk.HFTokenizer):
            encoded = tok.encode_many(texts)
        else:
            encoded = [tok.encode(t) for t in texts]
        out = np.full((len(texts), width), tok.pad_id, dtype=np.int64)
        for row, ids in enumerate(encoded):
            ids = ids[:width]
            out[row, :len(ids)] = ids
        return out

    def to_dict(self) -> dict:
        return {"kind": "text", "columns": list(self.names), "block_size": self.block_size,
                "tokenizer": self.tokenizer.spec(), "target": self.target}

    @classmethod
    def from_dict(cls, data: dict) -> TextEncoder:
        return cls(list(data["columns"]), tk.Tokenizer.from_spec(data["tokenizer"]), int(data["block_size"]),
                   data.get("target", ""))


def pick_text_columns(columns: list[Column], named: list[str]) -> list[Column]:
    """The text columns: those data.text_columns names (which must hold text), else the detected ones."""
    if not named:
        return [col for col in columns if is_free_text(col)]
    by_name = {col.name: col for col in columns}
    for name in named:
        if name not in by_name:
            raise DataError(f"data.text_columns: '{name}' is not a feature column (the target, or left out by "
                            "data.columns)")
    return [by_name[name] for name in named]


def only_text(columns: list[Column], text: list[Column]) -> None:
    """Text columns are the whole input: other feature columns beside them are refused by name."""
    chosen = {col.name for col in text}
    others = [col.name for col in columns if col.name not in chosen]
    if others:
        listed = ", ".join(f"'-{name}'" for name in others[:5])
        raise DataError(f"data.columns: the text column(s) {', '.join(c.name for c in text)} are tokenised into the "
                        f"input, and other feature columns cannot join them ({', '.join(others[:5])}); drop them "
                        f"with data.columns: [{listed}]")
