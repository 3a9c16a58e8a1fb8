"""Writes reviews.csv, the text-sentiment preset's data: 800 short film reviews, each labelled by its sentiment.

Made here, deterministically (a seeded generator, no download), so the file in the repository can always be
made again: `python presets/examples/make_reviews.py` rewrites it byte for byte (a test checks that).

A review's label is the sentiment most of its opinion phrases carry (two of one, at most one of the other),
and the phrases sit among neutral words in any order, so no single word or position gives the label away.
"""

from __future__ import annotations

import csv
import io
import random
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROWS = 800
SEED = 28
POSITIVE = ["a wonderful cast", "truly moving", "beautifully shot", "sharp and funny", "a joy to watch",
            "the score soars", "gripping to the end", "brilliant dialogue", "i loved every minute", "superb pacing"]
NEGATIVE = ["a dull cast", "painfully slow", "badly lit", "flat and humourless", "a chore to sit through",
            "the score grates", "lost me halfway", "clumsy dialogue", "i hated every minute", "messy pacing"]
NEUTRAL = ["the film", "this movie", "the director", "its second act", "the ending", "the lead", "the story",
           "overall", "honestly", "in places", "at two hours", "for a sequel", "on the big screen", "as expected"]


def review(rng: random.Random, positive: bool) -> str:
    major, minor = (POSITIVE, NEGATIVE) if positive else (NEGATIVE, POSITIVE)
    phrases = rng.sample(major, 2) + rng.sample(minor, rng.randint(0, 1)) + rng.sample(NEUTRAL, rng.randint(2, 4))
    rng.shuffle(phrases)
    return ", ".join(phrases).capitalize() + "."


def rows(n: int = ROWS, seed: int = SEED) -> list[tuple[str, str]]:
    rng = random.Random(seed)
    return [(review(rng, positive), "positive" if positive else "negative")
            for positive in (rng.random() < 0.5 for _ in range(n))]


def text(n: int = ROWS, seed: int = SEED) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["review", "sentiment"])
    writer.writerows(rows(n, seed))
    return out.getvalue()


def write(path: Path = HERE / "reviews.csv") -> Path:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text(), encoding="utf-8")
    tmp.replace(path)  # atomically: a reader never sees half a file
    return path


if __name__ == "__main__":
    print(write())
