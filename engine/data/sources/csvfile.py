"""CSV data: a header row, feature columns (numbers, or text one-hot encoded) and a target column whose task
is detected. Missing cells are reported all at once, dropped or filled (see engine/data/tabular.py)."""

from __future__ import annotations

import difflib
import functools
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from torchtui.engine.config import DataConfig
from torchtui.engine.data import tables, tabular
from torchtui.engine.data.arrays import Arrays
from torchtui.engine.data.tabular import Column, Problems
from torchtui.engine.data.text import columns as text_columns
from torchtui.engine.errors import DataError

# Integer targets with at most this many distinct values (and fewer than half the rows) are class labels.
MAX_CSV_CLASSES = 20


@dataclass
class CsvTable:
    """The feature columns; x of the Arrays holds row numbers until the split's encoder is fitted."""

    columns: list[Column]
    missing: str
    target: str

    @property
    def cells(self) -> dict[str, Column]:
        return {col.name: col for col in self.columns}

    def fit(self, train_rows) -> tabular.Encoder:
        return tabular.fit_encoder(self.columns, train_rows, self.missing, self.target)


def read(cfg: DataConfig) -> tuple[Arrays, list[str]]:
    table, y, task, names, notes = read_table(cfg)
    rows = torch.arange(len(y)).unsqueeze(1)[: cfg.limit or None]
    return Arrays(rows, y[: cfg.limit or None], task, names, table=table, notes=notes), []


def read_csv(cfg: DataConfig) -> tuple[torch.Tensor, torch.Tensor, str, list[str], list[str]]:
    """X, y, the task, class names and feature names of the whole file, encoded with statistics of every
    row (for a look at the data; training fits them on the train split only)."""
    table, y, task, names, _ = read_table(cfg)
    encoder = table.fit(np.arange(len(y)))
    return torch.from_numpy(encoder.transform(table.cells)), y, task, names, encoder.feature_names


def read_table(cfg: DataConfig) -> tuple[CsvTable | text_columns.TextTable, torch.Tensor, str, list[str], list[str]]:
    """The feature table (a TextTable when it has free-text columns), y, task, class names and notes; every
    bad cell is reported in one error."""
    file = tables.read(cfg.path, max_rows=cfg.limit or None)  # data.limit: only the first rows are read
    header = file.header
    target = cfg.target or header[-1]
    check = _checker(header, cfg.path)
    check("data.target", [target])
    features = tabular.pick_columns(header, target, list(cfg.columns), check)
    check("data.text_columns", list(cfg.text_columns))
    target_col = Column.of(target, file.columns[target])
    columns = [Column.of(name, file.columns[name]) for name in features]
    file.columns = {}  # the Arrow columns' memory goes back before the features are encoded
    notes = []
    keep = None
    if cfg.missing != "error":
        keep = ~target_col.missing
        if not keep.all():
            notes.append(f"data.missing: dropped {int((~keep).sum())} row(s) without a target value")
        if cfg.missing == "drop":
            full = keep.copy()
            for col in columns:
                full &= ~col.missing
            if full.sum() < keep.sum():
                notes.append(f"data.missing: dropped {int(keep.sum() - full.sum())} row(s) with missing values (drop)")
            keep = full
        if not keep.any():
            raise DataError(f"data.missing: every row of '{cfg.path}' has a missing value; nothing is left to train on")
        if keep.all():
            keep = None
    line_of = file.line_of
    if keep is not None:
        rows = np.flatnonzero(keep)
        columns = [col.take(rows) for col in columns]
        target_col = target_col.take(rows)
        line_of = lambda row: file.line_of(int(rows[row]))  # noqa: E731
    text = text_columns.pick_text_columns(columns, list(cfg.text_columns))
    if text:
        text_columns.only_text(columns, text)
    _check_all(columns, target_col, line_of, cfg, categorical="auto" if text else cfg.categorical)
    y, task, class_names, why = _target(target_col, line_of)
    if why:
        notes.append(why)
    if text:
        table = text_columns.TextTable(text, target, cfg.tokenizer, cfg.vocab_size, cfg.block_size)
        return table, y, task, class_names, notes
    return CsvTable(columns, cfg.missing, target), y, task, class_names, notes


def _check_all(columns: list[Column], target: Column, line_of, cfg: DataConfig, categorical: str) -> None:
    """Missing targets and the feature columns' bad cells, in one report."""
    problems = Problems(cfg.path, line_of)
    gaps = np.flatnonzero(target.missing)
    problems.add_rows(target.name, gaps, lambda i: "missing target value")
    fixes = tabular.check_cells(columns, cfg.missing, categorical, problems)
    if len(gaps):
        fixes.append("fill or drop the rows without a target value (any data.missing but error drops them)")
    problems.raise_if_any("; ".join(fixes))


def column_summary(cfg: DataConfig) -> list[str]:
    """One line per column of the file (type, missing cells, distinct values), the target marked; [] when
    the file cannot be read (loading it names the problem). Cached per file version: panes ask on each edit."""
    try:
        stat = Path(cfg.path).expanduser().stat()
    except OSError:
        return []
    return list(_column_summary(cfg.path, cfg.target, cfg.limit, stat.st_mtime_ns, stat.st_size))


@functools.lru_cache(maxsize=8)
def _column_summary(path: str, target: str, limit: int, _mtime: int, _size: int) -> list[str]:
    try:
        file = tables.read(path, max_rows=limit or None)
    except DataError:
        return []
    target = target or file.header[-1]
    return [f"{name}{' (target)' if name == target else ''}: " + Column.of(name, file.columns[name]).summary()
            for name in file.header]


def read_rows(path: str) -> tuple[list[str], list[tuple[int, list[str]]]]:
    """The header and each non-blank data row with its 1-based file line (Python's csv module)."""
    return tables.read_rows(Path(path).expanduser(), path)


def _checker(header: list[str], path: str):
    def check(field: str, names: list[str]) -> None:
        for name in names:
            if name not in header:
                close = difflib.get_close_matches(name, header, n=1)
                hint = f"did you mean '{close[0]}'? " if close else ""
                raise DataError(f"{field}: no column '{name}' in '{path}' ({hint}columns: {', '.join(header)})")
    return check


def _target(column: Column, line_of) -> tuple[torch.Tensor, str, list[str], str]:
    """y, the task and class names, detected from the target column's values; and why whole numbers that look
    like labels were read as values (a `data.target:` note, which a classification loss turns into the error)."""
    name, n = column.name, len(column)
    if column.kind == "number":
        bad = np.flatnonzero(column.bad | column.missing)
        if len(bad):  # mostly numbers with a few stray words is far likelier a typo than a set of class labels
            k = int(bad[0])
            raise DataError(f"data.path: row {k + 1} (line {line_of(k)}), column '{name}': '{column.text(k)}' is not a "
                            "number, but most target values are")
        numbers = column.numbers
        distinct, labels = np.unique(numbers, return_inverse=True)
        whole = len(distinct) <= MAX_CSV_CLASSES and bool(np.all(np.mod(distinct, 1) == 0))
        if whole and len(distinct) >= 2 and len(distinct) < n / 2:
            names = [str(int(v)) for v in distinct]
            y = torch.from_numpy(labels.reshape(-1).astype(np.int64))
            return y, "binary" if len(names) == 2 else "multiclass", names, ""
        why = ""
        if whole and len(distinct) == 1:
            why = (f"data.target: column '{name}' holds one value only ({distinct[0]:g}, in {n} row(s)): as "
                   "class labels that is one class, nothing to tell apart; give rows of two classes or more")
        elif whole:
            why = (f"data.target: column '{name}' has {len(distinct)} different whole numbers in {n} "
                   "row(s): too few rows to read them as class labels (at least two rows per class), so they are "
                   "read as values; give more rows")
        return torch.from_numpy(numbers.astype(np.float32)).unsqueeze(1), "regression", [], why
    present = np.unique(column.codes[column.codes >= 0])  # (texts of dropped rows are no labels)
    names = sorted(column.texts[k] for k in present)
    if len(names) < 2:
        raise DataError(f"data.target: column '{name}' holds one label only ('{names[0]}'); nothing to learn")
    label = {text: k for k, text in enumerate(names)}
    order = np.array([label.get(text, -1) for text in column.texts], dtype=np.int64)
    y = torch.from_numpy(order[column.codes])
    return y, "binary" if len(names) == 2 else "multiclass", names, ""
