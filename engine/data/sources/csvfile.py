"""CSV data: a header row, numeric feature columns and a target column whose task is detected."""

from __future__ import annotations

import csv
import difflib
import math
from pathlib import Path

import torch

from torchtui.engine.config import DataConfig
from torchtui.engine.data.arrays import Arrays
from torchtui.engine.errors import DataError
from torchtui.engine.files import not_a_file

# Integer targets with at most this many distinct values (and fewer than half the rows) are class labels.
MAX_CSV_CLASSES = 20
MISSING = ("", "na", "n/a", "nan", "null", "none", "?")


def read_csv(cfg: DataConfig) -> tuple[torch.Tensor, torch.Tensor, str, list[str], list[str]]:
    """X, y, the detected task, class names and feature names from the CSV at `cfg.path`."""
    header, rows = _read_rows(cfg.path)
    target = cfg.target or header[-1]
    _check_columns("data.target", [target], header, cfg.path)
    features = list(cfg.columns) or [name for name in header if name != target]
    _check_columns("data.columns", features, header, cfg.path)
    if target in features:
        raise DataError(f"data.columns: '{target}' is the target column (data.target); "
                        "it cannot also be a feature")
    if not features:
        raise DataError(f"data.columns: '{cfg.path}' has no columns besides the target '{target}'")
    index = {name: i for i, name in enumerate(header)}
    x = torch.tensor([[_number(k, row, index[name], name) for name in features]
                      for k, row in enumerate(rows, 1)], dtype=torch.float32)
    y, task, class_names = _target(rows, index[target], target)
    return x, y, task, class_names, features


def _read_rows(path: str) -> tuple[list[str], list[tuple[int, list[str]]]]:
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


def _check_columns(field: str, names: list[str], header: list[str], path: str) -> None:
    for name in names:
        if name not in header:
            close = difflib.get_close_matches(name, header, n=1)
            hint = f"did you mean '{close[0]}'? " if close else ""
            raise DataError(f"{field}: no column '{name}' in '{path}' ({hint}columns: {', '.join(header)})")


def _where(number: int, line: int, column: str) -> str:
    # Both numbers: "row" matches a spreadsheet's data rows, "line" an editor's (header and blanks count).
    return f"data.path: row {number} (line {line}), column '{column}'"


def _number(number: int, row: tuple[int, list[str]], i: int, column: str) -> float:
    line, cells = row
    text = cells[i].strip()
    if text.lower() in MISSING:
        raise DataError(f"{_where(number, line, column)}: missing value (fill or drop the row)")
    try:
        value = float(text)
    except ValueError:
        raise DataError(f"{_where(number, line, column)}: '{text}' is not a number "
                        "(feature columns must be numeric)") from None
    if not math.isfinite(value):
        raise DataError(f"{_where(number, line, column)}: '{text}' is not a finite number")
    return value


def _target(rows: list[tuple[int, list[str]]], i: int, column: str) -> tuple[torch.Tensor, str, list[str]]:
    """y, the task and class names, detected from the target column's values."""
    texts = [cells[i].strip() for _, cells in rows]
    for k, ((line, _), text) in enumerate(zip(rows, texts), 1):
        if text.lower() in MISSING:
            raise DataError(f"{_where(k, line, column)}: missing target value (fill or drop the row)")
    numbers = [_try_float(text) for text in texts]
    bad = [k for k, v in enumerate(numbers) if v is None or not math.isfinite(v)]
    if bad and len(bad) < len(rows) / 2:
        # Mostly numbers with a few stray words is far likelier a typo than a set of class labels.
        k = bad[0]
        raise DataError(f"{_where(k + 1, rows[k][0], column)}: '{texts[k]}' is not a number, "
                        "but most target values are")
    if not bad:
        distinct = sorted(set(numbers))
        few = len(distinct) <= MAX_CSV_CLASSES and len(distinct) < len(rows) / 2
        if not (few and len(distinct) >= 2 and all(v.is_integer() for v in distinct)):
            return torch.tensor(numbers, dtype=torch.float32).unsqueeze(1), "regression", []
        names = [str(int(v)) for v in distinct]
        labels = {v: k for k, v in enumerate(distinct)}
        y = torch.tensor([labels[v] for v in numbers], dtype=torch.long)
        return y, "binary" if len(names) == 2 else "multiclass", names
    names = sorted(set(texts))
    if len(names) < 2:
        raise DataError(f"data.target: column '{column}' holds one label only ('{names[0]}'); "
                        "nothing to learn")
    labels = {name: k for k, name in enumerate(names)}
    y = torch.tensor([labels[text] for text in texts], dtype=torch.long)
    return y, "binary" if len(names) == 2 else "multiclass", names


def _try_float(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


def read(cfg: DataConfig) -> tuple[Arrays, list[str]]:
    x, y, task, names, features = read_csv(cfg)
    return Arrays(x[: cfg.limit or None], y[: cfg.limit or None], task, names), features
