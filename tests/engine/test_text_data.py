"""Text data (issue 28): tokenizers, the token cache, next-token windows and CSV text columns.

References nobody here wrote: the char windows against nanoGPT's shakespeare_char/prepare.py construction in
plain numpy, and the BPE against Hugging Face `tokenizers` trained and run directly on the same text.
"""

from __future__ import annotations

import json
import os
import random
from pathlib import Path

import numpy as np
import pytest
import torch

from torchtui.cli.main import main
from torchtui.engine.config import DataConfig
from torchtui.engine.data.splits import load_data
from torchtui.engine.data.text import corpus
from torchtui.engine.data.text.tokenizer import BytesTokenizer, CharTokenizer, HFTokenizer, Tokenizer, count_chars

WORDS = "the quick brown fox jumps over a lazy dog while seven wizards quietly hex jolly old kings".split()


def prose(n_words: int, seed: int = 0) -> str:
    rng = random.Random(seed)
    lines = [" ".join(rng.choices(WORDS, k=rng.randint(3, 12))) for _ in range(n_words // 7)]
    return "\n".join(lines) + "\n"


def text_cfg(path, **kw) -> DataConfig:
    return DataConfig(source="text", path=str(path), **{"block_size": 16, "val_fraction": 0.1, **kw})


@pytest.mark.parametrize("make", [
    lambda text: CharTokenizer.from_counts(count_chars(text)),
    lambda text: CharTokenizer.from_counts(count_chars(text), padded=True),
    lambda text: BytesTokenizer(),
    lambda text: HFTokenizer.train([text], 300),
], ids=["char", "char-padded", "bytes", "bpe"])
def test_tokenizers_round_trip_and_rebuild_from_their_spec(make):
    text = "Grüße, naïve café — 東京\n" + prose(200)
    tok = make(text)
    ids = tok.encode(text)
    assert ids.dtype == np.int64 and ids.min() >= 0 and ids.max() < tok.vocab_size
    assert tok.decode(ids) == text
    spec = json.loads(json.dumps(tok.spec()))  # plain values only (weights-only checkpoints, tokenizer.json)
    again = Tokenizer.from_spec(spec)
    assert np.array_equal(again.encode(text), ids) and again.vocab_size == tok.vocab_size


def test_char_windows_match_nanogpt_prepare(tmp_path):
    # nanoGPT data/shakespeare_char/prepare.py: sorted(set(data)) as the vocabulary, the first 90 % train,
    # uint16 ids; a window of block_size is data[i:i+T] with targets data[i+1:i+T+1].
    data = prose(3000)[:10_000]
    assert len(data) == 10_000  # n·0.9 whole: nanoGPT cuts at int(n·0.9), torchtui at n − round(n·0.1)
    (tmp_path / "input.txt").write_text(data)
    chars = sorted(set(data))
    stoi = {ch: i for i, ch in enumerate(chars)}
    n = len(data)
    train_ids = np.array([stoi[c] for c in data[:int(n * 0.9)]], dtype=np.uint16)
    val_ids = np.array([stoi[c] for c in data[int(n * 0.9):]], dtype=np.uint16)

    splits = load_data(text_cfg(tmp_path / "input.txt", block_size=32))
    tokens = corpus.tokenise(corpus.find(str(tmp_path / "input.txt")), "char", 0, 0.1, 0.0)
    assert tokens.dtype == np.uint16 and splits.n_classes == len(chars) and splits.task == "tokens"
    assert np.array_equal(np.fromfile(tokens.bin, dtype=np.uint16), np.concatenate([train_ids, val_ids]))
    for part, ids in ((splits.train, train_ids), (splits.val, val_ids)):
        x, y = part.windows(torch.arange(len(part)))
        assert len(part) == (len(ids) - 1) // 32
        starts = np.arange(len(part)) * 32
        want_x = np.stack([ids[s:s + 32] for s in starts]).astype(np.int64)
        want_y = np.stack([ids[s + 1:s + 33] for s in starts]).astype(np.int64)
        assert np.array_equal(x.numpy(), want_x) and np.array_equal(y.numpy(), want_y)


def test_splits_never_share_a_window(tmp_path):
    # bytes tokens are the file's bytes: each split's windows must lie inside its own byte range.
    raw = prose(3000).encode()
    (tmp_path / "c.txt").write_bytes(raw)
    splits = load_data(text_cfg(tmp_path / "c.txt", tokenizer="bytes", val_fraction=0.2, test_fraction=0.1))
    size = len(raw)
    ranges = {"train": (0, size - round(size * 0.2) - round(size * 0.1)),
              "val": (size - round(size * 0.2) - round(size * 0.1), size - round(size * 0.1)),
              "test": (size - round(size * 0.1), size)}
    for name, (lo, hi) in ranges.items():
        part = getattr(splits, name)
        x, y = part.windows(torch.arange(len(part)))
        stream = np.frombuffer(raw[lo:hi], dtype=np.uint8)
        assert len(part) == (hi - lo - 1) // 16 > 0
        assert np.array_equal(x.reshape(-1).numpy(), stream[:len(part) * 16])
        assert np.array_equal(y.reshape(-1).numpy(), stream[1:len(part) * 16 + 1])


def test_the_cache_is_reused_and_remade_when_the_file_changes(tmp_path):
    path = tmp_path / "c.txt"
    path.write_text(prose(2000))
    before = corpus.tokenised
    first = load_data(text_cfg(path))
    [bin_file] = corpus.cache_dir().glob("*.bin")
    stamp = bin_file.stat().st_mtime_ns
    second = load_data(text_cfg(path))
    assert corpus.tokenised == before + 1 and bin_file.stat().st_mtime_ns == stamp  # read, not re-tokenised
    assert torch.equal(first.train.x, second.train.x) and first.notes and not second.notes
    assert str(corpus.cache_dir()).startswith(os.environ["XDG_CACHE_HOME"])  # never beside the user's data
    path.write_text(prose(2000, seed=1))
    load_data(text_cfg(path))
    assert corpus.tokenised == before + 2


def test_an_interrupted_tokenisation_leaves_no_cache_entry(tmp_path, monkeypatch):
    path = tmp_path / "c.txt"
    path.write_text(prose(2000))

    def broken(*args):
        yield np.zeros(10, dtype=np.int64), 10
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(corpus, "_encoded", broken)
    with pytest.raises(OSError):
        load_data(text_cfg(path))
    assert list(corpus.cache_dir().iterdir()) == []  # no .bin, no .json, no temporary file
    monkeypatch.undo()
    assert len(load_data(text_cfg(path)).train) > 0


def test_bpe_is_trained_on_the_train_split_only_and_matches_tokenizers_used_directly(tmp_path, monkeypatch):
    from tokenizers import Tokenizer as HF
    from tokenizers import decoders, models, pre_tokenizers, trainers

    val_text = " zyzzyva" * 300 + "\n"  # a word only the val split has, repeated: it would be merged
    raw = prose(6000) + val_text
    path = tmp_path / "c.txt"
    path.write_text(raw)
    fraction = (len(val_text) + 50) / len(raw)  # the split falls just before the val-only word
    monkeypatch.setattr(corpus, "PIECE_BYTES", 4096)  # many pieces: each cut must tokenise as the whole would
    splits = load_data(text_cfg(path, tokenizer="bpe", vocab_size=320, val_fraction=fraction))
    tok = Tokenizer.from_spec(splits.tokenizer)
    assert tok.hf.token_to_id("Ġzyzzyva") is None and len(tok.encode(" zyzzyva")) > 2
    assert tok.hf.token_to_id("Ġquick") is not None  # (a train word is merged whole)
    # The reference: the library trained and run directly on the train text, as its docs show.
    (train_lo, train_hi), _, _ = corpus.split_bounds(corpus.find(str(path)), fraction, 0.0)
    train_text = raw[train_lo:train_hi]
    ref = HF(models.BPE())
    ref.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    ref.decoder = decoders.ByteLevel()
    ref.train_from_iterator([train_text], trainers.BpeTrainer(
        vocab_size=320, show_progress=False, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    assert ref.get_vocab() == tok.hf.get_vocab()
    tokens = corpus.tokenise(corpus.find(str(path)), "bpe", 320, fraction, 0.0)
    assert tokens.reused
    stored = np.fromfile(tokens.bin, dtype=tokens.dtype).astype(np.int64)
    start, end = tokens.bounds["train"]
    assert np.array_equal(stored[start:end], ref.encode(train_text).ids)


def test_a_csv_text_column_becomes_padded_ids_and_is_detected(tmp_path):
    rng = random.Random(0)
    rows = ["text,label"] + [f"{' '.join(rng.choices(WORDS, k=rng.randint(3, 30)))},{i % 3}" for i in range(300)]
    (tmp_path / "t.csv").write_text("\n".join(rows) + "\n")
    splits = load_data(DataConfig(source="csv", path=str(tmp_path / "t.csv"), tokenizer="char", block_size=40))
    assert splits.task == "multiclass" and splits.x_train.dtype == torch.int64 and splits.input_shape == (40,)
    pad = splits.tokenizer["pad_id"]
    tok = Tokenizer.from_spec(splits.tokenizer)
    lengths = (splits.x_train != pad).sum(1)
    assert lengths.max() == 40 and lengths.min() < 40  # long texts cut, short ones padded on the right
    first = splits.x_train[0]
    assert (first[lengths[0]:] == pad).all() and tok.decode(first) in "".join(rows)


@pytest.mark.parametrize("setup, field", [
    (lambda d: ["--set", f"data.path={d / 'missing.txt'}"], "data.path"),
    (lambda d: (d / "empty.txt").write_text("") and [] or ["--set", f"data.path={d / 'empty.txt'}"], "data.path"),
    (lambda d: ["--set", f"data.path={d / 'ok.txt'}", "--set", "data.block_size=100000"], "data.block_size"),
    (lambda d: (d / "bad.json").write_text("{not json") and [] or [
        "--set", f"data.path={d / 'ok.txt'}", "--set", f"data.tokenizer={d / 'bad.json'}"], "data.tokenizer"),
    (lambda d: (d / "latin1.txt").write_bytes("café\n".encode("latin-1") * 50) and [] or [
        "--set", f"data.path={d / 'latin1.txt'}"], "data.path"),
], ids=["missing-path", "empty", "block-too-large", "bad-tokenizer-json", "not-utf8"])
def test_bad_text_input_is_one_line_naming_the_field(tmp_path, capsys, setup, field):
    (tmp_path / "ok.txt").write_text(prose(300))
    preset = tmp_path / "lm.yaml"
    preset.write_text("schema: 1\nname: lm\ndata: {source: text, tokenizer: char, block_size: 8}\n"
                      "model: {kind: transformer, n_layer: 1, d_model: 16, n_head: 2}\ntrain: {epochs: 1}\n")
    code = main(["train", str(preset), "--device", "cpu", "--runs-dir", str(tmp_path / "runs"), *setup(tmp_path)])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and field in err and "Traceback" not in err, err


def test_the_example_reviews_csv_is_made_again_byte_for_byte():
    import importlib.util

    script = Path(__file__).resolve().parents[2] / "presets" / "examples" / "make_reviews.py"
    spec = importlib.util.spec_from_file_location("make_reviews", script)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.text() == (script.parent / "reviews.csv").read_text(encoding="utf-8")


def test_predict_tokenises_a_csvs_text_column_as_training_did(tmp_path, capsys):
    runs = tmp_path / "runs"
    assert main(["train", "text-sentiment", "--set", "train.epochs=2", "--device", "cpu", "--runs-dir", str(runs)]) == 0
    [run] = list(runs.iterdir())
    reviews = (Path(__file__).resolve().parents[2] / "presets" / "examples" / "reviews.csv").read_text().splitlines()
    (tmp_path / "new.csv").write_text("\n".join(reviews[:41]) + "\n")
    capsys.readouterr()
    assert main(["predict", str(run), "--input", str(tmp_path / "new.csv")]) == 0
    out = capsys.readouterr().out
    assert "40 predictions" in out and "accuracy" in out, out
    assert float(out.rsplit("accuracy", 1)[1].split()[0]) >= 0.8, out


@pytest.mark.parametrize("damage", [
    lambda meta: {**meta, "chars": 12345},          # an older cache format (chars was one number)
    lambda meta: {**meta, "bounds": {"train": [0, 1]}},
    lambda meta: "not a dict",
], ids=["old-format", "missing-split", "not-a-dict"])
def test_a_damaged_cache_entry_is_made_again_not_a_crash(tmp_path, damage):
    path = tmp_path / "c.txt"
    path.write_text(prose(2000))
    first = load_data(text_cfg(path))
    [meta_file] = corpus.cache_dir().glob("*.json")
    meta_file.write_text(json.dumps(damage(json.loads(meta_file.read_text()))))
    before = corpus.tokenised
    again = load_data(text_cfg(path))
    assert corpus.tokenised == before + 1 and torch.equal(again.train.x, first.train.x)


def test_windows_read_from_the_cache_equal_those_held_in_memory(tmp_path):
    path = tmp_path / "c.txt"
    path.write_text(prose(3000))
    held = load_data(text_cfg(path, tokenizer="bytes"))
    streamed = load_data(text_cfg(path, tokenizer="bytes", stream=True))  # pread per window from the .bin
    assert streamed.streamed and not held.streamed and len(streamed.train) == len(held.train)
    order = torch.randperm(len(held.train), generator=torch.Generator().manual_seed(0))
    for (xa, ya), (xb, yb) in zip(held.train_batches(order, 7), streamed.train_batches(order, 7)):
        assert torch.equal(xa, xb) and torch.equal(ya, yb) and xb.dtype == torch.int64
    assert all(torch.equal(a, b) for pa, pb in zip(held.val.chunks(5), streamed.val.chunks(5)) for a, b in zip(pa, pb))


def test_a_tokenizer_json_beside_a_preset_is_found_relative_to_it(tmp_path):
    from torchtui.engine import presets

    HFTokenizer.train([prose(500)], 300).save(str(tmp_path / "tok.json"))
    (tmp_path / "c.txt").write_text(prose(1000))
    preset = tmp_path / "p.yaml"
    for given, wanted in (("tok.json", str(tmp_path / "tok.json")), ("char", "char")):
        preset.write_text(f"schema: 1\nname: p\ndata: {{source: text, path: c.txt, tokenizer: {given}}}\n")
        cfg = presets.load(str(preset))
        assert cfg.data.tokenizer == wanted
    preset.write_text("schema: 1\nname: p\ndata: {source: text, path: c.txt, tokenizer: tok.json, block_size: 8}\n")
    splits = load_data(presets.load(str(preset)).data)
    assert splits.tokenizer["kind"] == "file" and splits.n_classes == 300
