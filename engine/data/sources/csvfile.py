"""CSV data: a header row, feature columns (numbers, or text one-hot encoded) and a target column whose task
is detected. Missing cells are reported all at once, dropped or filled (see engine/data/tabular.py)."""

from __future__ import annotations

import csv
import difflib
import functools
from dataclasses import dataclass
from pathlib import Path

import torch

from torchtui.engine.config import DataConfig
from torchtui.engine.data import tabular
from torchtui.engine.data.arrays import Arrays
from torchtui.engine.data.tabular import Column, Problems, as_number, is_missing
from torchtui.engine.errors import DataError
from torchtui.engine.files import not_a_file

# Integer targets with at most this many distinct values (and fewer than half the rows) are class labels.
MAX_CSV_CLASSES = 20


@dataclass
class CsvTable:
    """The feature columns' cells; x of the Arrays holds row numbers until the split's encoder is fitted."""

    columns: list[Column]
    missing: str
    target: str

    @property
    def cells(self) -> dict[str, list[str]]:
        return {col.name: col.cells for col in self.columns}

    def fit(self, train_rows: list[int]) -> tabular.Encoder:
        return tabular.fit_encoder(self.columns, train_rows, self.missing, self.target)


def read(cfg: DataConfig) -> tuple[Arrays, list[str]]:
    table, y, task, names, notes = read_table(cfg)
    rows = torch.arange(len(y)).unsqueeze(1)[: cfg.limit or None]
    return Arrays(rows, y[: cfg.limit or None], task, names, table=table, notes=notes), []


def read_csv(cfg: DataConfig) -> tuple[torch.Tensor, torch.Tensor, str, list[str], list[str]]:
    """X, y, the task, class names and feature names of the whole file, encoded with statistics of every
    row (for a look at the data; training fits them on the train split only)."""
    table, y, task, names, _ = read_table(cfg)
    encoder = table.fit(list(range(len(y))))
    return torch.from_numpy(encoder.transform(table.cells)), y, task, names, encoder.feature_names


def read_table(cfg: DataConfig) -> tuple[CsvTable, torch.Tensor, str, list[str], list[str]]:
    """The feature table, y, task, class names and notes; every bad cell is reported in one error."""
    header, rows = read_rows(cfg.path)
    target = cfg.target or header[-1]
    check = _checker(header, cfg.path)
    check("data.target", [target])
    features = tabular.pick_columns(header, target, list(cfg.columns), check)
    index = {name: i for i, name in enumerate(header)}
    notes = []
    if cfg.missing != "error":
        keep = [r for r in rows if not is_missing(r[1][index[target]])]
        if len(keep) < len(rows):
            notes.append(f"data.missing: dropped {len(rows) - len(keep)} row(s) without a target value")
        if cfg.missing == "drop":
            full = [r for r in keep if not any(is_missing(r[1][index[name]]) for name in features)]
            if len(full) < len(keep):
                notes.append(f"data.missing: dropped {len(keep) - len(full)} row(s) with missing values (drop)")
            keep = full
        if not keep:
            raise DataError(f"data.missing: every row of '{cfg.path}' has a missing value; nothing is left to train on")
        rows = keep
    lines = [line for line, _ in rows]
    columns = [Column.of(name, [cells[index[name]].strip() for _, cells in rows]) for name in features]
    target_cells = [cells[index[target]].strip() for _, cells in rows]
    _check_all(columns, target, target_cells, lines, cfg)
    y, task, class_names, why = _target(target_cells, lines, target)
    if why:
        notes.append(why)
    return CsvTable(columns, cfg.missing, target), y, task, class_names, notes


def _check_all(columns, target: str, target_cells: list[str], lines: list[int], cfg: DataConfig) -> None:
    """Missing targets and the feature columns' bad cells, in one report."""
    problems = Problems(cfg.path)
    gaps = [i for i, text in enumerate(target_cells) if is_missing(text)]
    for i in gaps:
        problems.add(target, i, lines[i], "missing target value")
    fixes = tabular.check_cells(columns, lines, cfg.missing, cfg.categorical, problems)
    if gaps:
        fixes.append("fill or drop the rows without a target value (any data.missing but error drops them)")
    problems.raise_if_any("; ".join(fixes))


def column_summary(cfg: DataConfig) -> list[str]:
    """One line per column of the file (type, missing cells, distinct values), the target marked; [] when
    the file cannot be read (loading it names the problem). Cached per file version: panes ask on each edit."""
    try:
        stat = Path(cfg.path).expanduser().stat()
    except OSError:
        return []
    return list(_column_summary(cfg.path, cfg.target, stat.st_mtime_ns, stat.st_size))


@functools.lru_cache(maxsize=8)
def _column_summary(path: str, target: str, _mtime: int, _size: int) -> list[str]:
    try:
        header, rows = read_rows(path)
    except DataError:
        return []
    target = target or header[-1]
    return [f"{name}{' (target)' if name == target else ''}: "
            + Column.of(name, [r[i].strip() for _, r in rows]).summary()
            for i, name in enumerate(header)]


def read_rows(path: str) -> tuple[list[str], list[tuple[int, list[str]]]]:
    """The header and each non-blank data row with its 1-based file line."""
    file = Path(path).expanduser()
    if not file.is_file():
        raise DataError(f"data.path: {not_a_file(file, repr(path))}")
    try:
        # utf-8-sig: spreadsheets often prepend a byte-order mark that would otherwise stick to column 1.
        with open(file, newline="", encoding="utf-8-sig") as handle:
            reader = csv.reader(handle)
            lines = [(reader.line_num, row) for row in reader if any(cell.strip() for cell in row)]
    except (UnicodeDecodeError, csv.Error) as err:
        raise DataError(f"data.path: cannot read '{path}' as CSV ({err})") from None
    if not lines:
        raise DataError(f"data.path: '{path}' is empty (expected a header row, then data rows)")
    header = [name.strip() for name in lines[0][1]]
    duplicates = sorted({name for name in header if header.count(name) > 1})
    if duplicates:
        raise DataError(f"data.path: '{path}' header repeats column(s) {', '.join(map(repr, duplicates))}")
    rows = lines[1:]
    if not rows:
        raise DataError(f"data.path: '{path}' has a header but no data rows")
    for line, row in rows:
        if len(row) != len(header):
            raise DataError(f"data.path: line {line} of '{path}' has {len(row)} fields, "
                            f"the header has {len(header)}")
    return header, rows


def _checker(header: list[str], path: str):
    def check(field: str, names: list[str]) -> None:
        for name in names:
            if name not in header:
                close = difflib.get_close_matches(name, header, n=1)
                hint = f"did you mean '{close[0]}'? " if close else ""
                raise DataError(f"{field}: no column '{name}' in '{path}' ({hint}columns: {', '.join(header)})")
    return check


def _target(texts: list[str], lines: list[int], column: str) -> tuple[torch.Tensor, str, list[str], str]:
    """y, the task and class names, detected from the target column's values; and why whole numbers that look
    like labels were read as values (a `data.target:` note, which a classification loss turns into the error)."""
    numbers = [as_number(text) for text in texts]
    bad = [k for k, v in enumerate(numbers) if v is None]
    if bad and len(bad) < len(texts) / 2:
        # Mostly numbers with a few stray words is far likelier a typo than a set of class labels.
        k = bad[0]
        raise DataError(f"data.path: row {k + 1} (line {lines[k]}), column '{column}': '{texts[k]}' is not a "
                        "number, but most target values are")
    if not bad:
        distinct = sorted(set(numbers))
        whole = all(v.is_integer() for v in distinct) and len(distinct) <= MAX_CSV_CLASSES
        if whole and len(distinct) >= 2 and len(distinct) < len(texts) / 2:
            names = [str(int(v)) for v in distinct]
            labels = {v: k for k, v in enumerate(distinct)}
            y = torch.tensor([labels[v] for v in numbers], dtype=torch.long)
            return y, "binary" if len(names) == 2 else "multiclass", names, ""
        why = ""
        if whole and len(distinct) == 1:
            why = (f"data.target: column '{column}' holds one value only ({distinct[0]:g}, in {len(texts)} row(s)): as "
                   "class labels that is one class, nothing to tell apart; give rows of two classes or more")
        elif whole:
            why = (f"data.target: column '{column}' has {len(distinct)} different whole numbers in {len(texts)} "
                   "row(s): too few rows to read them as class labels (at least two rows per class), so they are "
                   "read as values; give more rows")
        return torch.tensor(numbers, dtype=torch.float32).unsqueeze(1), "regression", [], why
    names = sorted(set(texts))
    if len(names) < 2:
        raise DataError(f"data.target: column '{column}' holds one label only ('{names[0]}'); nothing to learn")
    labels = {name: k for k, name in enumerate(names)}
    y = torch.tensor([labels[text] for text in texts], dtype=torch.long)
    return y, "binary" if len(names) == 2 else "multiclass", names, ""
