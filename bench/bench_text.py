"""A large text corpus tokenised once into the token cache, then reused: time and peak memory.

    .venv/bin/python bench/bench_text.py [--mb 1024] [--tokenizers char,bpe]

Writes an MB-sized text file to /tmp (prose from a fixed vocabulary, seeded), then for each tokenizer runs,
in a fresh child process each, `load_data` of data.source: text twice: the first tokenises into an empty
cache, the second finds it. Each child prints its wall time and its peak RSS (resource.getrusage); the
file and the cache are deleted afterwards. Ratios printed: peak RSS ÷ file size (well under 1 means the
corpus was never held whole) and first ÷ second load time (what the cache saves).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

WORDS = ("the of and to in a is that for it as was with be by on not he i this are or his from at which but "
         "have an they you were her she there one all we their been has would when who will more if no out so "
         "said what up its about into than them can only other new some time could these two may then do first "
         "any my now such like our over man me even most made after also did many before must through back "
         "years where much your way well down should because each just those people how too little state good "
         "very make world still own see men work long get here between both life being under never day same "
         "another know while last might us great old year off come since against go came right used take three "
         "tokenizer transformer gradient embedding attention résumé naïve café").split()


def write_corpus(path: Path, size: int, seed: int = 0) -> None:
    """~size bytes of seeded prose: lines of 5–20 words, a blank line every 50,000. Sixteen different 4 MiB
    blocks are made and written in turn (making a gigabyte word by word took longer than tokenising it)."""
    rng = random.Random(seed)
    blocks = []
    for _ in range(16):
        lines = [" ".join(rng.choices(WORDS, k=rng.randint(5, 20))) for _ in range(50_000)]
        blocks.append(("\n".join(lines) + "\n\n").encode()[:4 << 20])
    written = 0
    with open(path, "wb") as out:
        while written < size:
            block = blocks[(written // (4 << 20)) % len(blocks)][:size - written]
            block = block[:block.rfind(b"\n") + 1] or block  # whole lines (and whole UTF-8 characters)
            out.write(block)
            written += len(block)


def child(path: str, tokenizer: str, vocab_size: int) -> None:
    """One load, timed, with this process's peak RSS: printed as JSON."""
    import resource

    from torchtui.engine.config import DataConfig
    from torchtui.engine.data.splits import load_data
    from torchtui.engine.data.text import corpus

    start = time.perf_counter()
    splits = load_data(DataConfig(source="text", path=path, tokenizer=tokenizer, vocab_size=vocab_size,
                                  block_size=256, val_fraction=0.05, stream=True))
    seconds = time.perf_counter() - start
    xb, yb = next(splits.train_batches(__import__("torch").randperm(len(splits.train)), 64))
    assert xb.shape == (64, 256) and bool((xb[:, 1:] == yb[:, :-1]).all())
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux
    tokens = sum(len(getattr(splits, name)) for name in ("train", "val", "test")) * 256
    print(json.dumps({"seconds": seconds, "peak_rss": peak, "tokenised": corpus.tokenised,
                      "windows_tokens": tokens, "vocab": splits.n_classes}))


def run_child(path: Path, tokenizer: str, vocab_size: int, env: dict) -> dict:
    child = subprocess.Popen([sys.executable, __file__, "--child", str(path), tokenizer, str(vocab_size)],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        stdout, stderr = child.communicate()
    finally:  # stopped (Ctrl-C, kill): the child goes too, so the 1 GiB file can be deleted
        if child.poll() is None:
            child.kill()
            child.wait()
    if child.returncode:
        raise SystemExit(f"child failed: {stderr.strip()[-2000:]}")
    return json.loads(stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=int, default=1024, help="corpus size in MiB (default 1024: 1 GiB)")
    parser.add_argument("--tokenizers", default="char,bpe")
    parser.add_argument("--vocab-size", type=int, default=4096)
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # a kill cleans up like Ctrl-C does
    work = Path(tempfile.mkdtemp(prefix="torchtui-bench-text-", dir="/tmp"))
    path = work / "corpus.txt"
    try:
        start = time.perf_counter()
        write_corpus(path, args.mb << 20)
        size = path.stat().st_size
        print(f"corpus: {size:,} bytes written in {time.perf_counter() - start:.1f} s ({path})")
        for tokenizer in args.tokenizers.split(","):
            env = {**os.environ, "XDG_CACHE_HOME": str(work / f"cache-{tokenizer}")}
            first = run_child(path, tokenizer, args.vocab_size, env)
            second = run_child(path, tokenizer, args.vocab_size, env)
            assert first["tokenised"] == 1 and second["tokenised"] == 0, (first, second)
            cache = sum(f.stat().st_size for f in Path(env["XDG_CACHE_HOME"]).rglob("*.bin"))
            mib = 2 ** 20
            print(f"{tokenizer}: vocab {first['vocab']:,}, cache {cache:,} bytes; "
                  f"first load (tokenise) {first['seconds']:.1f} s ({size / mib / first['seconds']:.1f} MiB/s), "
                  f"peak RSS {first['peak_rss'] / mib:,.0f} MiB = {first['peak_rss'] / size:.3f} × the file; "
                  f"second load (cache) {second['seconds']:.2f} s, peak RSS {second['peak_rss'] / mib:,.0f} MiB; "
                  f"first ÷ second {first['seconds'] / second['seconds']:,.0f}×", flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        child(sys.argv[2], sys.argv[3], int(sys.argv[4]))
    else:
        main()
