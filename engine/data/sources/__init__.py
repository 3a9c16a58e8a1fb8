"""Data sources by name: one entry per source, naming the module of this package that reads it.

The table imports nothing heavy, so config validation, the Dataset pane's dropdown and the README read it
without loading torch; `read(cfg)` imports the source's module only when data is loaded. A new source is
a module here with `read(cfg)` and a line in SOURCES.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from dataclasses import dataclass


@dataclass(frozen=True)
class Source:
    module: str                 # module in this package whose read(cfg) loads it
    task: str | None = None     # the task the source fixes; None: detected from its targets when loaded
    tabular: bool = False       # each sample is a row of features (a CNN cannot take them)
    path: str = ""              # what data.path must name ("" = the source reads no path)


SOURCES = {
    "line": Source("synthetic", "regression", tabular=True),
    "moons": Source("synthetic", "binary", tabular=True),
    "circles": Source("synthetic", "binary", tabular=True),
    "xor": Source("synthetic", "binary", tabular=True),
    "spiral": Source("synthetic", "multiclass", tabular=True),
    "blobs": Source("synthetic", "multiclass", tabular=True),
    "sine": Source("synthetic", "regression"),
    # scikit-learn's bundled sets, read offline
    "digits": Source("bundled", "multiclass"),
    "iris": Source("bundled", "multiclass", tabular=True),
    "wine": Source("bundled", "multiclass", tabular=True),
    "breast_cancer": Source("bundled", "binary", tabular=True),
    "csv": Source("csvfile", path="a CSV file with a header row (or a .parquet file)"),
    "idx": Source("files", path="a folder of MNIST-format IDX files (train-images-idx3-ubyte[.gz], …)"),
    "tensors": Source("files", path="a .pt or .npz file holding X and y"),
    "torchvision": Source("vision", path="the dataset's root folder (nothing is downloaded)"),
    "code": Source("code", path="path/to/file.py:function returning (train, val[, test]) datasets"),
    "text": Source("text", "tokens", path="a text file or a folder of text files"),
}


def in_module(module: str) -> tuple[str, ...]:
    """The sources one module reads, e.g. in_module("synthetic")."""
    return tuple(name for name, source in SOURCES.items() if source.module == module)


def is_code_ref(ref: str) -> bool:
    """`path/to/file.py:name` with a Python identifier after the last colon."""
    file, sep, name = ref.rpartition(":")
    return bool(sep and file.strip() and name.isidentifier())


def read(cfg):
    """(Arrays, feature names), or ((train, val, test) Datasets, []) for sources that bring Datasets."""
    module = importlib.import_module(f"{__name__}.{SOURCES[cfg.source].module}")
    return module.read(cfg)


MAX_GENERATED_VALUES = 1_000_000_000  # floats a synthetic source may make (4 GB)


def size_problems(cfg) -> Iterator[tuple[str, str]]:
    """Settings under which a source would make more samples or numbers than fit (field, problem)."""
    if cfg.source == "line" and cfg.step > 0 and cfg.end > cfg.start:
        points = (cfg.end - cfg.start) / cfg.step
        if points > cfg.MAXIMUM["n_samples"]:
            yield "step", (f"start {cfg.start:g} to end {cfg.end:g} by {cfg.step:g} gives {points:,.0f} points "
                           f"(at most {cfg.MAXIMUM['n_samples']:,}): use a larger step")
    width, by = {"blobs": (cfg.features, "features"), "sine": (cfg.seq_len, "seq_len")}.get(cfg.source, (2, ""))
    if cfg.source in in_module("synthetic") and cfg.n_samples * width > MAX_GENERATED_VALUES:
        each = f" (data.{by})" if by else ""
        yield "n_samples", (f"{cfg.n_samples:,} samples × {width:,} values each{each} is more than "
                            f"{MAX_GENERATED_VALUES:,} numbers: lower n_samples" + (f" or {by}" if by else ""))
