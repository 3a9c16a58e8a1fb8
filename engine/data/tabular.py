"""Tables as people have them: typed columns, every bad cell reported at once, missing values and text
categories filled and one-hot encoded by an `Encoder` fitted on the train rows only.

A column is held as numpy arrays, never a Python object per cell: numbers as float64 (NaN where missing or
bad), text categories as codes into the column's distinct texts. They are made from Arrow arrays (see
engine/data/tables.py) with Arrow's compute kernels. The module imports numpy and pyarrow only when a table is
read: config.py reads its choices, and the UI imports config. The encoder is a plain dict in checkpoints, so
`torchtui predict` applies the same preprocessing.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from torchtui.engine.errors import DataError

MISSING_TEXT = ("", "na", "n/a", "nan", "null", "none", "?")
MISSING_CHOICES = ("error", "drop", "mean", "median", "most_frequent")
CATEGORICAL_CHOICES = ("auto", "error")
TARGET_SCALING = ("auto", "always", "never")
MAX_CATEGORIES = 100   # distinct texts in one column past which it looks like an id or free text, not a category
MAX_LISTED = 20        # bad cells named in one error; the rest are counted per column
# What Python's float() reads as a finite number, less its digit underscores ("1_000" is listed as a bad cell).
NUMBER = r"^[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?$"


def is_missing(text: str) -> bool:
    return text.strip().lower() in MISSING_TEXT


def as_number(text: str) -> float | None:
    """One cell as a finite float, or None."""
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


@dataclass
class Column:
    """One column of a table and what it holds: "number" or "category" (text).

    numbers: float64, NaN where missing or bad (number columns). missing: bool, a gap (blank, NA, …).
    bad: bool, present but not a finite number (number columns). codes: int32 index into `texts`, -1 where
    missing (category columns). texts: the distinct stripped texts, in order of first appearance. `text(i)`
    gives a cell's text back for messages.
    """

    name: str
    kind: str
    missing: Any
    numbers: Any = None
    bad: Any = None
    codes: Any = None
    texts: list[str] | None = None
    text: Callable[[int], str] = str

    def __len__(self) -> int:
        return len(self.missing)

    @classmethod
    def of(cls, name: str, array) -> Column:
        """The column of an Arrow array (or chunked array) of numbers or strings."""
        import numpy as np
        import pyarrow as pa
        import pyarrow.compute as pc

        if isinstance(array, pa.ChunkedArray):
            array = array.combine_chunks() if array.num_chunks != 1 else array.chunk(0)
        kind = array.type
        if pa.types.is_integer(kind) or pa.types.is_floating(kind):
            values = _floats(array)
            missing = np.isnan(values)  # a gap, or the text "nan" the reader parsed as NaN: both missing
            bad = np.isinf(values)
            if bad.any():
                values = values.copy()  # (a float column's values are Arrow's own memory, read-only)
                values[bad] = np.nan
            return cls(name, "number", missing, values, bad, text=lambda i: str(array[i].as_py()))
        if pa.types.is_null(kind):
            array = pa.array([None] * len(array), pa.string())
        elif not (pa.types.is_string(kind) or pa.types.is_large_string(kind)):
            array = array.cast(pa.string())
        stripped = pc.utf8_trim_whitespace(array)
        missing = as_bools(pc.or_kleene(pc.is_null(stripped), pc.is_in(pc.utf8_lower(stripped),
                                                                      value_set=pa.array(MISSING_TEXT))))
        looks = as_bools(pc.match_substring_regex(stripped, NUMBER)) & ~missing
        values = np.full(len(array), np.nan)
        if looks.any():
            values[looks] = _floats(pc.cast(pc.filter(stripped, pa.array(looks)), pa.float64()))
        parsed = looks & np.isfinite(values)
        values[~parsed] = np.nan
        present = int((~missing).sum())
        text = (lambda i: stripped[i].as_py() or "")  # noqa: E731 - one cell, for a message
        # Mostly numbers with a few stray words is far likelier a typo than a set of categories.
        if present == 0 or parsed.sum() >= present / 2:
            return cls(name, "number", missing, values, ~missing & ~parsed, text=text)
        encoded = pc.dictionary_encode(pc.if_else(pa.array(missing), pa.scalar(None, pa.string()), stripped))
        codes = pc.coalesce(encoded.indices, pa.scalar(-1, encoded.indices.type))
        codes = codes.to_numpy(zero_copy_only=False).astype(np.int32)
        return cls(name, "category", missing, codes=codes, texts=encoded.dictionary.to_pylist(), text=text)

    def take(self, rows) -> Column:
        """The column of these rows only (an index array)."""
        def pick(a):
            return None if a is None else a[rows]
        text = self.text
        return Column(self.name, self.kind, self.missing[rows], pick(self.numbers), pick(self.bad),
                      pick(self.codes), self.texts, lambda i: text(int(rows[i])))

    def distinct(self) -> int:
        import numpy as np

        if self.kind == "category":
            return len(np.unique(self.codes[self.codes >= 0]))
        return len(np.unique(self.numbers[~self.missing & ~self.bad]))

    def summary(self) -> str:
        """e.g. "number, 3 missing, 47 distinct" for the Dataset pane and error messages."""
        gaps = int(self.missing.sum())
        missing = f", {gaps:,} missing" if gaps else ""
        return f"{'text' if self.kind == 'category' else self.kind}{missing}, {self.distinct():,} distinct"


def _floats(array):
    """float64 numpy array of an Arrow number array, NaN where null."""
    import pyarrow as pa

    if array.type != pa.float64():
        array = array.cast(pa.float64())
    return array.to_numpy(zero_copy_only=False)  # no copy when there are no gaps


def as_bools(array):
    """bool numpy array of an Arrow bool array, False where null."""
    import numpy as np
    import pyarrow.compute as pc

    if array.null_count:
        array = pc.and_kleene(array, pc.is_valid(array))
    return np.asarray(array.to_numpy(zero_copy_only=False), dtype=bool)


class Problems:
    """Bad cells collected over a whole table, raised as one error: the first few named, all counted.
    `line_of(row)` gives a row's file line (None when the file has no lines, a Parquet file)."""

    def __init__(self, where: str, line_of: Callable[[int], int | None] = lambda row: None):
        self.where, self.line_of, self.listed, self.counts = where, line_of, [], Counter()

    def add(self, column: str, row: int, what: str) -> None:
        self.counts[column] += 1
        if len(self.listed) < MAX_LISTED:
            line = self.line_of(row)
            at = f"row {row + 1} (line {line})" if line is not None else f"row {row + 1}"
            self.listed.append(f"  {at}, column '{column}': {what}")

    def add_rows(self, column: str, rows, what: Callable[[int], str]) -> None:
        """Every row of an index array at once: counted, and named while there is room."""
        rows = rows.tolist() if hasattr(rows, "tolist") else list(rows)
        if not rows:
            return
        room = max(0, MAX_LISTED - len(self.listed))
        for row in rows[:room]:
            self.add(column, row, what(row))
        self.counts[column] += len(rows) - min(room, len(rows))

    def raise_if_any(self, fix: str) -> None:
        if not self.counts:
            return
        total = sum(self.counts.values())
        per_column = ", ".join(f"'{name}' {n}" for name, n in self.counts.most_common())
        more = f"\n  … and {total - len(self.listed)} more" if total > len(self.listed) else ""
        raise DataError(f"data.path: {total} bad cell(s) in '{self.where}' (per column: {per_column}):\n"
                        + "\n".join(self.listed) + more + f"\n{fix}")


def pick_columns(header: list[str], target: str, wanted: list[str], check) -> list[str]:
    """The feature columns: `wanted` in order, or every column but the target less any `-name` entries."""
    drops = [w[1:].strip() for w in wanted if w.startswith("-")]
    keeps = [w for w in wanted if not w.startswith("-")]
    check("data.columns", drops + keeps)
    if drops and keeps:
        raise DataError("data.columns: list the columns to use, or the ones to drop as '-name', not both")
    features = keeps or [name for name in header if name != target and name not in drops]
    if target in features:
        raise DataError(f"data.columns: '{target}' is the target column (data.target); it cannot also be a feature")
    if not features:
        raise DataError(f"data.columns: no columns left besides the target '{target}'")
    return features


def check_cells(columns: list[Column], missing: str, categorical: str, problems: Problems) -> list[str]:
    """Every bad cell of the feature columns at once, added to `problems`: text in a number column and
    missing values (when data.missing is error); returns the fixes to offer. A text column is refused
    outright when data.categorical is error."""
    import numpy as np

    for col in columns:
        if col.kind == "category" and categorical == "error":
            sample = ", ".join(repr(c) for c in col.texts[:3])
            raise DataError(f"data.categorical: column '{col.name}' holds text ({sample}, …): set data.categorical: "
                            f"auto to one-hot encode it, or drop it with data.columns: ['-{col.name}']")
        if col.kind == "number":
            problems.add_rows(col.name, np.flatnonzero(col.bad), lambda i, c=col: f"'{c.text(i)}' is not a number")
        if missing == "error":
            problems.add_rows(col.name, np.flatnonzero(col.missing), lambda i: "missing value")
    fixes = ["fix or blank out the cells that are not numbers"] if any(
        c.kind == "number" and c.bad.any() for c in columns) else []
    if missing == "error" and any(c.missing.any() for c in columns):
        fixes.append("set data.missing: drop (rows with a gap), mean, median or most_frequent (filled from "
                     "the train split) to handle missing values")
    return fixes


@dataclass
class Encoder:
    """Fill values and categories fitted on train rows; turns columns into a float32 feature matrix."""

    columns: list[dict]     # {"name", "kind", "fill": float | str | None, "categories": [text, …]}
    target: str = ""        # the target column's name (predict keeps it beside the answers)

    @property
    def feature_names(self) -> list[str]:
        names = []
        for col in self.columns:
            names += [f"{col['name']}={c}" for c in col["categories"]] if col["kind"] == "category" else [col["name"]]
        return names

    @property
    def source_columns(self) -> list[str]:
        return [col["name"] for col in self.columns]

    def transform(self, columns: dict[str, Column], rows=None):
        """(len(rows), width) float32 numpy array of the given rows (an index array; all when None)."""
        import numpy as np

        n = len(next(iter(columns.values()))) if rows is None else len(rows)
        out = np.zeros((n, len(self.feature_names)), dtype=np.float32)
        j = 0
        for fitted in self.columns:
            col = columns[fitted["name"]]
            if fitted["kind"] == "number":
                values = col.numbers if rows is None else col.numbers[rows]
                gaps = col.missing if rows is None else col.missing[rows]
                out[:, j] = values
                if fitted["fill"] is not None:
                    out[gaps, j] = fitted["fill"]
                j += 1
                continue
            where = {c: k for k, c in enumerate(fitted["categories"])}
            if col.kind == "category":
                # Each of the column's texts → its one-hot slot, -1 for one the train rows never had (all zeros).
                slot = np.array([where.get(t, -1) for t in col.texts] + [where.get(fitted["fill"], -1)], np.int64)
                codes = col.codes if rows is None else col.codes[rows]
                hot = slot[np.where(codes >= 0, codes, len(col.texts))]
            else:  # new inputs whose column reads as numbers: match the train categories by text
                hot = np.array([where.get(fitted["fill"] if col.missing[i] else col.text(i), -1)
                                for i in (range(len(col)) if rows is None else rows)], np.int64)
            ok = np.flatnonzero(hot >= 0)
            out[ok, j + hot[ok]] = 1.0
            j += len(fitted["categories"])
        return out

    def to_dict(self) -> dict:
        return {"columns": self.columns, "target": self.target}

    @classmethod
    def from_dict(cls, data: dict) -> Encoder:
        return cls([dict(c) for c in data["columns"]], data.get("target", ""))


def fit_encoder(columns: list[Column], rows, missing: str, target: str = "") -> Encoder:
    """Fill values (mean, median or most frequent) and categories from the train rows only; no fill value
    when data.missing is error or drop (a gap in new inputs is then an error, as it was in training).
    Of values equally most frequent, the smallest fills (as scikit-learn's SimpleImputer does)."""
    import numpy as np

    rows = np.asarray(rows, dtype=np.int64)
    fills = missing not in ("error", "drop")
    fitted = []
    for col in columns:
        if col.kind == "number":
            fill = None
            if fills:
                values = col.numbers[rows]
                values = values[~np.isnan(values)]
                fill = _fill(values, missing) if len(values) else 0.0
            fitted.append({"name": col.name, "kind": "number", "fill": fill, "categories": []})
            continue
        codes = col.codes[rows]
        codes = codes[codes >= 0]
        counts = np.bincount(codes, minlength=len(col.texts))
        seen = np.flatnonzero(counts)
        if len(seen) > MAX_CATEGORIES:
            raise DataError(f"data.categorical: column '{col.name}' has {len(seen):,} distinct texts in the train "
                            f"split (at most {MAX_CATEGORIES} categories): it looks like an id or free text; drop "
                            f"it with data.columns: ['-{col.name}']")
        categories = sorted(col.texts[k] for k in seen)
        fill = None
        if len(codes) and fills:
            top = counts.max()
            fill = min(col.texts[k] for k in seen if counts[k] == top)
        fitted.append({"name": col.name, "kind": "category", "fill": fill, "categories": categories})
    return Encoder(fitted, target)


def _fill(values, missing: str) -> float:
    import numpy as np

    if missing == "median":
        return float(np.median(values))
    if missing == "most_frequent":
        distinct, counts = np.unique(values, return_counts=True)
        return float(distinct[np.argmax(counts)])  # the smallest of the most frequent, as scikit-learn's
    return float(np.mean(values))
