"""A text corpus (a file, or a folder of files read as one text) tokenised once into a token cache.

The cache is nanoGPT's format: the ids as one flat uint16 (vocabularies up to 65,536) or uint32 `.bin` file,
train then val then test, with a `.json` beside it holding the tokenizer's spec and where each split's tokens
start. It lives in `$XDG_CACHE_HOME/torchtui/tokens/` (~/.cache/… without it), never beside the user's data,
keyed by each file's path, size and mtime and the tokenizer settings, so an edited corpus or another
tokenizer is tokenised anew and an unchanged one is reused. Both files are written under temporary names and
renamed into place, the `.json` last: a cache with its `.json` is complete.

The corpus is split by position before it is tokenised (the first bytes train, then val, then test), so no
token and no window spans two splits, and a BPE learns its merges from the train split only. Text is read
and tokenised a block at a time: peak memory is a few blocks, whatever the corpus's size.
"""

from __future__ import annotations

import codecs
import hashlib
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from torchtui.engine.data.text import tokenizer as tk
from torchtui.engine.errors import DataError

CACHE_VERSION = 2  # 2: characters per split (1 kept one count for the corpus)
BLOCK_BYTES = 8 << 20        # read and tokenised at a time (char, bytes)
# One text handed to the BPE library, PIECE_BATCH of them encoded at once on all cores. Its regex
# pre-tokeniser slows on long texts: 1.8 µs/byte on 4 KiB, 2.3 on 32 KiB, 3.4 on 256 KiB (measured here).
PIECE_BYTES = 32 << 10
PIECE_BATCH = 64
BPE_TRAIN_BYTES = 128 << 20  # a BPE learns from at most this much of the train split, evenly spread over it
SPLITS = ("train", "val", "test")
tokenised = 0  # corpora tokenised by this process (tests check that a second load reuses the cache)
_SPACE = frozenset(b" \t\n\r\x0b\x0c")


@dataclass(frozen=True)
class Corpus:
    """The files read as one text, in order, and their sizes."""

    where: str                   # data.path as the user wrote it
    files: tuple[Path, ...]
    sizes: tuple[int, ...]

    @property
    def size(self) -> int:
        return sum(self.sizes)

    def fingerprint(self) -> list:
        return [[str(f), size, f.stat().st_mtime_ns] for f, size in zip(self.files, self.sizes)]


# data.path: @stdlib — modules of the Python standard library every CPython 3.9+ has: a corpus on every machine.
STDLIB = ("argparse.py", "dataclasses.py", "functools.py", "inspect.py", "textwrap.py", "typing.py")


def find(path: str, pattern: str = "") -> Corpus:
    """The corpus at data.path: one file, or a folder's files (matching `pattern`, not hidden, no NUL byte)."""
    root = Path(path).expanduser()
    if path.strip() == "@stdlib":
        import sysconfig

        files = [Path(sysconfig.get_paths()["stdlib"]) / name for name in STDLIB]
    elif root.is_file():
        files = [root]
    elif root.is_dir():
        found = root.glob(pattern) if pattern.strip() else root.rglob("*")
        files = sorted(f for f in found if f.is_file() and not _hidden(f.relative_to(root)) and _is_text(f))
        if not files:
            what = f"files matching data.files '{pattern}'" if pattern.strip() else "text files"
            raise DataError(f"data.path: no {what} in the folder '{path}'")
    else:
        raise DataError(f"data.path: '{path}' does not exist (a text file or a folder of text files)")
    try:
        sizes = tuple(f.stat().st_size for f in files)
    except OSError as err:
        raise DataError(f"data.path: cannot read '{err.filename}' ({err.strerror})") from None
    if not sum(sizes):
        raise DataError(f"data.path: '{path}' is empty: there is no text to learn from")
    return Corpus(path, tuple(files), sizes)


def _hidden(relative: Path) -> bool:
    return any(part.startswith(".") for part in relative.parts)


def _is_text(file: Path) -> bool:
    """No NUL byte in the first 8 KiB (git's test for a binary file): .pyc files and images stay out."""
    try:
        with open(file, "rb") as handle:
            return b"\0" not in handle.read(8192)
    except OSError:
        return False


def split_bounds(corpus: Corpus, val_fraction: float, test_fraction: float) -> list[tuple[int, int]]:
    """[(start, end) byte offsets of train, val and test], each cut at the start of a UTF-8 character."""
    size = corpus.size
    n_val, n_test = round(size * val_fraction), round(size * test_fraction)
    if size - n_val - n_test <= 0:
        raise DataError(f"data.val_fraction: the corpus's {size:,} bytes leave none to train on")
    cuts = [_char_start(corpus, size - n_val - n_test), _char_start(corpus, size - n_test)]
    return [(0, cuts[0]), (cuts[0], cuts[1]), (cuts[1], size)]


def _char_start(corpus: Corpus, offset: int) -> int:
    """`offset`, or the next offset that does not fall inside a multi-byte UTF-8 character."""
    ahead = b"".join(read_bytes(corpus, offset, min(corpus.size, offset + 4), 4))
    skip = 0
    while skip < len(ahead) and ahead[skip] & 0xC0 == 0x80:  # a continuation byte
        skip += 1
    return offset + skip


def read_bytes(corpus: Corpus, start: int, end: int, block: int = BLOCK_BYTES) -> Iterator[bytes]:
    """The bytes [start, end) of the files read one after another, a block at a time."""
    base = 0
    for file, size in zip(corpus.files, corpus.sizes):
        lo, hi = max(start, base), min(end, base + size)
        if lo < hi:
            try:
                with open(file, "rb") as handle:
                    handle.seek(lo - base)
                    left = hi - lo
                    while left > 0:
                        data = handle.read(min(block, left))
                        if not data:
                            break
                        left -= len(data)
                        yield data
            except OSError as err:
                raise DataError(f"data.path: cannot read '{file}' ({err.strerror})") from None
        base += size


def read_text(corpus: Corpus, start: int, end: int, block: int = BLOCK_BYTES, safe: bool = False) -> Iterator[str]:
    """The text of bytes [start, end), a block at a time (cut where a BPE would not notice when `safe`).

    Not UTF-8: a DataError naming the file and the way out (data.tokenizer: bytes reads any file).
    """
    decoder = codecs.getincrementaldecoder("utf-8")("strict")
    carry = b""
    offset = start
    for data in read_bytes(corpus, start, end, block):
        data = carry + data
        cut = _safe_cut(data) if safe else len(data)
        carry = data[cut:]
        yield _decode(decoder, data[:cut], corpus, offset)
        offset += cut
    last = _decode(decoder, carry, corpus, offset, final=True)
    if last:
        yield last


def _safe_cut(data: bytes) -> int:
    """The last place in `data`'s final half where a BPE's pre-tokenisation may cut it (else all of it): after
    a newline or before a space that stand between two non-space bytes (GPT-2's pattern never joins those
    into one pre-token, so the pieces tokenise as the whole would)."""
    lo, best = len(data) // 2, len(data)
    cuts = []
    for sep, after in ((b"\n", 1), (b" ", 0)):
        at = data.rfind(sep, lo, len(data) - 1)
        while at > lo and (data[at - 1] in _SPACE or data[at + 1] in _SPACE):
            at = data.rfind(sep, lo, at)
        if at > lo:
            cuts.append(at + after)
    return max(cuts) if cuts else best


def _decode(decoder, data: bytes, corpus: Corpus, offset: int, final: bool = False) -> str:
    try:
        return decoder.decode(data, final)
    except UnicodeDecodeError as err:
        file, at = _locate(corpus, offset + err.start)
        raise DataError(f"data.path: '{file}' is not UTF-8 text (byte {at:,}); use data.tokenizer: bytes, "
                        "or save it as UTF-8") from None


def _locate(corpus: Corpus, offset: int) -> tuple[Path, int]:
    for file, size in zip(corpus.files, corpus.sizes):
        if offset < size:
            return file, offset
        offset -= size
    return corpus.files[-1], offset


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "torchtui" / "tokens"


@dataclass(frozen=True)
class Tokens:
    """A tokenised corpus in the cache: its .bin file, dtype, the tokenizer and each split's [start, end)."""

    bin: Path
    dtype: np.dtype
    tokenizer: tk.Tokenizer
    bounds: dict[str, tuple[int, int]]
    chars: dict[str, int]  # characters per split (tokens per character: bits per character from a loss)
    reused: bool

    def tokens_per_char(self) -> float:
        """Measured on the train split (1.0 for char)."""
        start, end = self.bounds["train"]
        return (end - start) / max(1, self.chars["train"])

    def memmap(self) -> np.memmap:
        return np.memmap(self.bin, dtype=self.dtype, mode="r")


def key(corpus: Corpus, name: str, vocab_size: int, val_fraction: float, test_fraction: float) -> str:
    """The cache entry for this corpus, as it is now, tokenised with these settings."""
    settings = {"version": CACHE_VERSION, "files": corpus.fingerprint(), "tokenizer": name,
                "split": [val_fraction, test_fraction]}
    if name == "bpe":
        settings["vocab_size"] = vocab_size
    elif name not in tk.KINDS:  # a tokenizer.json: edited, it tokenises differently
        file = Path(name).expanduser()
        stat = file.stat() if file.is_file() else None
        settings["file"] = [str(file.resolve()), stat.st_size, stat.st_mtime_ns] if stat else str(file)
    return hashlib.sha256(json.dumps(settings).encode()).hexdigest()[:32]


def tokenise(corpus: Corpus, name: str, vocab_size: int, val_fraction: float, test_fraction: float) -> Tokens:
    """The corpus's tokens from the cache, tokenising it first when the cache has no entry for it."""
    entry = cache_dir() / key(corpus, name, vocab_size, val_fraction, test_fraction)
    meta_path, bin_path = entry.with_suffix(".json"), entry.with_suffix(".bin")
    if meta_path.is_file() and bin_path.is_file():
        try:
            return _opened(json.loads(meta_path.read_text()), bin_path, reused=True)
        except (OSError, ValueError, KeyError, TypeError, AttributeError, DataError):
            pass  # a damaged entry, or one an older torchtui wrote, is made again
    bounds = split_bounds(corpus, val_fraction, test_fraction)
    tok = _built(corpus, name, vocab_size, bounds[0])
    meta = _write(corpus, tok, bounds, bin_path)
    _atomic_write(meta_path, json.dumps(meta).encode())
    global tokenised
    tokenised += 1
    return _opened(meta, bin_path, reused=False)


def _opened(meta: dict, bin_path: Path, reused: bool) -> Tokens:
    tok = tk.Tokenizer.from_spec(meta["tokenizer"])
    dtype = np.dtype(meta["dtype"])
    if bin_path.stat().st_size != meta["bounds"]["test"][1] * dtype.itemsize:
        raise DataError("the cached tokens are incomplete")
    bounds = {name: (int(meta["bounds"][name][0]), int(meta["bounds"][name][1])) for name in SPLITS}
    chars = {name: int(meta["chars"][name]) for name in SPLITS}
    return Tokens(bin_path, dtype, tok, bounds, chars, reused)


def _built(corpus: Corpus, name: str, vocab_size: int, train: tuple[int, int]) -> tk.Tokenizer:
    if name == "char":
        counts = None
        for text in read_text(corpus, 0, corpus.size):
            counts = tk.count_chars(text, counts)
        return tk.CharTokenizer.from_counts(counts)
    if name == "bpe":
        return tk.HFTokenizer.train(_training_text(corpus, *train), vocab_size)
    if name == "bytes":
        return tk.BytesTokenizer()
    return tk.HFTokenizer.from_file(name)


def _training_text(corpus: Corpus, start: int, end: int) -> Iterator[str]:
    """The train split's text for a BPE to learn from: all of it, or BPE_TRAIN_BYTES in evenly spaced
    stretches of a large one (word counts, all a BPE learns from, settle long before)."""
    stretches = max(1, (end - start) // BPE_TRAIN_BYTES + 1)
    step, length = (end - start) // stretches, min(end - start, BPE_TRAIN_BYTES) // stretches
    for k in range(stretches):
        lo = _char_start(corpus, start + k * step)
        yield from read_text(corpus, lo, min(end, lo + length) if stretches > 1 else end, PIECE_BYTES, safe=True)


def _write(corpus: Corpus, tok: tk.Tokenizer, bounds: list[tuple[int, int]], bin_path: Path) -> dict:
    """Tokenise each split into the .bin (under a temporary name, renamed when complete); its metadata."""
    bin_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = bin_path.with_name(f".{bin_path.name}.{os.getpid()}.tmp")
    token_bounds, start, chars = {}, 0, {}
    try:
        with open(tmp, "wb") as out:
            for split, (lo, hi) in zip(SPLITS, bounds):
                count = chars[split] = 0
                for ids, n_chars in _encoded(corpus, tok, lo, hi):
                    out.write(ids.astype(tok.dtype).tobytes())
                    count += len(ids)
                    chars[split] += n_chars
                token_bounds[split] = [start, start + count]
                start += count
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, bin_path)
    finally:
        tmp.unlink(missing_ok=True)
    return {"tokenizer": tok.spec(), "dtype": tok.dtype.str, "bounds": token_bounds, "chars": chars}


def _encoded(corpus: Corpus, tok: tk.Tokenizer, lo: int, hi: int) -> Iterator[tuple[np.ndarray, int]]:
    """(ids, characters) of bytes [lo, hi), a block at a time."""
    if tok.kind == "bytes":
        for data in read_bytes(corpus, lo, hi):
            ids = np.frombuffer(data, dtype=np.uint8)
            yield ids, int(np.count_nonzero((ids & 0xC0) != 0x80))  # characters: bytes that start one
        return
    if tok.kind == "char":
        for text in read_text(corpus, lo, hi):
            yield tok.encode(text), len(text)
        return
    batch: list[str] = []
    for text in read_text(corpus, lo, hi, PIECE_BYTES, safe=True):
        batch.append(text)
        if len(batch) == PIECE_BATCH:
            yield from _encoded_batch(tok, batch)
            batch = []
    if batch:
        yield from _encoded_batch(tok, batch)


def _encoded_batch(tok: tk.HFTokenizer, texts: list[str]) -> Iterator[tuple[np.ndarray, int]]:
    for text, ids in zip(texts, tok.encode_many(texts)):
        yield ids, len(text)


def _atomic_write(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
