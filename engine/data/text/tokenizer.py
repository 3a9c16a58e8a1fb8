"""Tokenizers: text ↔ integer ids, rebuilt from a plain dict (`spec()`) that a checkpoint or export carries.

Torch-free, so predict, export and the Dataset pane's preview can use them without loading torch.

- char: the corpus's own characters, in code-point order (nanoGPT's shakespeare_char: sorted(set(text))).
- bytes: the 256 byte values of the UTF-8 text; every text encodes, nothing is unknown.
- bpe: a byte-level BPE trained here, on the train split only, with Hugging Face `tokenizers` (GPT-2's
  pre-tokenisation; nothing is downloaded).
- file: a tokenizer.json the user has (any Hugging Face tokenizer saved with `save()`).

Sequences padded to one length (text columns of a CSV) need a pad id: char and bytes then reserve ids for
<pad> (and <unk>, for characters not seen when the vocabulary was made), bpe trains a <pad> special token,
and a tokenizer.json must bring one. Language-model corpora are never padded: `pad_id` is None.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from torchtui.engine.errors import DataError

KINDS = ("char", "bytes", "bpe")         # data.tokenizer names; anything else is a path to a tokenizer.json
PAD, UNK = "<pad>", "<unk>"
PAD_NAMES = (PAD, "[PAD]", "<|pad|>", "<|padding|>")  # what a tokenizer.json may call its pad token
MAX_CODEPOINT = 0x110000


class TokenizerError(DataError):
    """A tokenizer cannot be built or cannot encode a text; the message names what (data.tokenizer, the file)."""


class Tokenizer:
    """ids ↔ text. `kind` is char, bytes, bpe or file; `pad_id` is None unless built for padded sequences."""

    kind: str = ""
    vocab_size: int = 0
    pad_id: int | None = None

    @classmethod
    def from_spec(cls, spec: dict) -> Tokenizer:
        """The tokenizer a `spec()` describes."""
        kind = spec.get("kind")
        if kind == "char":
            return CharTokenizer(spec["chars"], spec.get("padded", False))
        if kind == "bytes":
            return BytesTokenizer(spec.get("padded", False))
        if kind in ("bpe", "file"):
            return HFTokenizer(_hf_from_str(spec["json"], "the tokenizer spec"), kind, spec.get("pad_id"))
        raise TokenizerError(f"unknown tokenizer kind {kind!r} (expected char, bytes, bpe or file)")

    def spec(self) -> dict:
        raise NotImplementedError

    def encode(self, text: str) -> np.ndarray:
        raise NotImplementedError

    def decode(self, ids) -> str:
        raise NotImplementedError

    @property
    def dtype(self) -> np.dtype:
        """The smallest unsigned type that holds every id (nanoGPT's uint16 .bin files when it fits)."""
        return np.dtype(np.uint16 if self.vocab_size <= 65536 else np.uint32)


class CharTokenizer(Tokenizer):
    kind = "char"

    def __init__(self, chars: Iterable[str], padded: bool = False):
        self.chars = "".join(chars)
        self.padded = padded
        self.specials = (PAD, UNK) if padded else ()
        offset = len(self.specials)
        self.pad_id = 0 if padded else None
        self.unk_id = 1 if padded else None
        self.vocab_size = len(self.chars) + offset
        codes = np.array([ord(c) for c in self.chars], dtype=np.int64)
        self._lookup = np.full(MAX_CODEPOINT, -1, dtype=np.int32)  # code point → id (-1: not in the vocabulary)
        self._lookup[codes] = np.arange(offset, offset + len(codes), dtype=np.int32)
        self._table = np.array(list(self.specials) + list(self.chars), dtype=object)

    @classmethod
    def from_counts(cls, counts: np.ndarray, padded: bool = False) -> CharTokenizer:
        """The characters with a nonzero count in a per-code-point histogram (see `count_chars`)."""
        return cls("".join(map(chr, np.flatnonzero(counts).tolist())), padded)

    def spec(self) -> dict:
        return {"kind": "char", "vocab_size": self.vocab_size, "pad_id": self.pad_id, "chars": self.chars,
                "padded": self.padded}

    def encode(self, text: str) -> np.ndarray:
        ids = self._lookup[code_points(text)]
        missing = ids < 0
        if missing.any():
            if self.unk_id is None:
                first = text[int(np.argmax(missing))]
                raise TokenizerError(f"the character {first!r} is not in this char vocabulary "
                                     f"({len(self.chars)} characters)")
            ids[missing] = self.unk_id
        return ids.astype(np.int64)

    def decode(self, ids) -> str:
        ids = np.asarray(ids, dtype=np.int64).reshape(-1)
        ids = ids[(ids >= len(self.specials)) & (ids < self.vocab_size)]  # pads and unknowns print as nothing
        return "".join(self._table[ids].tolist())


class BytesTokenizer(Tokenizer):
    kind = "bytes"

    def __init__(self, padded: bool = False):
        self.padded = padded
        self.pad_id = 256 if padded else None  # after the byte values, so ids stay the bytes themselves
        self.vocab_size = 257 if padded else 256

    def spec(self) -> dict:
        return {"kind": "bytes", "vocab_size": self.vocab_size, "pad_id": self.pad_id, "padded": self.padded}

    def encode(self, text: str) -> np.ndarray:
        return np.frombuffer(text.encode("utf-8"), dtype=np.uint8).astype(np.int64)

    def decode(self, ids) -> str:
        ids = np.asarray(ids, dtype=np.int64).reshape(-1)
        return ids[(ids >= 0) & (ids < 256)].astype(np.uint8).tobytes().decode("utf-8", errors="replace")


class HFTokenizer(Tokenizer):
    """A Hugging Face `tokenizers.Tokenizer`: a BPE trained here (kind bpe) or the user's tokenizer.json (file)."""

    def __init__(self, hf, kind: str, pad_id: int | None = None):
        self.hf, self.kind, self.pad_id = hf, kind, pad_id
        self.vocab_size = hf.get_vocab_size(with_added_tokens=True)

    @classmethod
    def train(cls, texts: Iterable[str], vocab_size: int, padded: bool = False) -> HFTokenizer:
        """A byte-level BPE (GPT-2's pre-tokenisation and byte alphabet) trained on `texts` only."""
        from tokenizers import Tokenizer as HF
        from tokenizers import decoders, models, pre_tokenizers, trainers

        hf = HF(models.BPE())
        hf.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        hf.decoder = decoders.ByteLevel()
        trainer = trainers.BpeTrainer(vocab_size=vocab_size, show_progress=False,
                                      special_tokens=[PAD] if padded else [],
                                      initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
        hf.train_from_iterator(texts, trainer=trainer)
        return cls(hf, "bpe", hf.token_to_id(PAD) if padded else None)

    @classmethod
    def from_file(cls, path: str, padded: bool = False) -> HFTokenizer:
        """The user's tokenizer.json; padded sequences need its pad token (one of PAD_NAMES)."""
        try:
            with open(path, encoding="utf-8") as handle:
                text = handle.read()
        except (OSError, UnicodeDecodeError) as err:
            reason = getattr(err, "strerror", None) or err
            raise TokenizerError(f"data.tokenizer: cannot read '{path}' ({reason})") from None
        hf = _hf_from_str(text, f"'{path}'")
        pad_id = None
        if padded:
            pad_id = next((hf.token_to_id(n) for n in PAD_NAMES if hf.token_to_id(n) is not None), None)
            if pad_id is None:
                raise TokenizerError(f"data.tokenizer: '{path}' has no pad token ({', '.join(PAD_NAMES)}); "
                                     "padded sequences need one")
        return cls(hf, "file", pad_id)

    def spec(self) -> dict:
        return {"kind": self.kind, "vocab_size": self.vocab_size, "pad_id": self.pad_id, "json": self.hf.to_str()}

    def save(self, path: str) -> None:
        self.hf.save(path)

    def encode(self, text: str) -> np.ndarray:
        return np.asarray(self.hf.encode(text, add_special_tokens=False).ids, dtype=np.int64)

    def encode_many(self, texts: list[str]) -> list[np.ndarray]:
        """Several texts at once: the library encodes them on all cores."""
        return [np.asarray(e.ids, dtype=np.int64) for e in self.hf.encode_batch_fast(texts, add_special_tokens=False)]

    def decode(self, ids) -> str:
        ids = [int(i) for i in np.asarray(ids).reshape(-1) if i != self.pad_id]
        return self.hf.decode(ids, skip_special_tokens=True)


def _hf_from_str(text: str, where: str):
    from tokenizers import Tokenizer as HF

    try:
        return HF.from_str(text)
    except Exception as err:  # the library raises a bare Exception for malformed JSON or unknown models
        raise TokenizerError(f"data.tokenizer: {where} is not a Hugging Face tokenizer.json "
                             f"({str(err).splitlines()[0][:120] if str(err) else type(err).__name__})") from None


def code_points(text: str) -> np.ndarray:
    """Each character's code point, without a Python object per character."""
    return np.frombuffer(text.encode("utf-32-le"), dtype="<u4").astype(np.int64)


def count_chars(text: str, counts: np.ndarray | None = None) -> np.ndarray:
    """A histogram over code points (added to `counts` when given): chunked corpora build a char vocabulary."""
    found = np.bincount(code_points(text), minlength=MAX_CODEPOINT)
    return found if counts is None else counts + found


def build(name: str, *, train_texts: Iterable[str] = (), char_counts: np.ndarray | None = None,
          vocab_size: int = 0, padded: bool = False) -> Tokenizer:
    """The tokenizer `data.tokenizer` names: char needs `char_counts`, bpe `train_texts`, a path nothing."""
    if name == "char":
        if char_counts is None:
            raise TokenizerError("a char vocabulary needs the corpus's characters")
        return CharTokenizer.from_counts(char_counts, padded)
    if name == "bytes":
        return BytesTokenizer(padded)
    if name == "bpe":
        return HFTokenizer.train(train_texts, vocab_size, padded)
    return HFTokenizer.from_file(name, padded)
