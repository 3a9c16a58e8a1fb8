"""Tables as people have them: typed columns, every bad cell reported at once, missing values and text
categories filled and one-hot encoded by an `Encoder` fitted on the train rows only.

Torch-free (the Dataset pane summarises a CSV's columns with it in the UI process); the encoder returns
numpy arrays and is a plain dict in checkpoints, so `torchtui predict` applies the same preprocessing.
"""

from __future__ import annotations

import math
import statistics
from collections import Counter
from dataclasses import dataclass, field

from torchtui.engine.errors import DataError

MISSING_TEXT = ("", "na", "n/a", "nan", "null", "none", "?")
MISSING_CHOICES = ("error", "drop", "mean", "median", "most_frequent")
CATEGORICAL_CHOICES = ("auto", "error")
TARGET_SCALING = ("auto", "always", "never")
MAX_CATEGORIES = 100   # distinct texts in one column past which it looks like an id or free text, not a category
MAX_LISTED = 20        # bad cells named in one error; the rest are counted per column


def is_missing(text: str) -> bool:
    return text.strip().lower() in MISSING_TEXT


def as_number(text: str) -> float | None:
    """The cell as a finite float, or None."""
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


@dataclass
class Column:
    """One column's stripped cells and what they hold: "number" or "category" (text)."""

    name: str
    cells: list[str]
    kind: str = "number"
    numbers: list[float | None] = field(default_factory=list)  # number columns: None where missing

    @classmethod
    def of(cls, name: str, cells: list[str]) -> Column:
        numbers = [None if is_missing(c) else as_number(c) for c in cells]
        present = sum(not is_missing(c) for c in cells)
        parsed = sum(v is not None for v in numbers)
        # Mostly numbers with a few stray words is far likelier a typo than a set of categories.
        kind = "number" if present == 0 or parsed >= present / 2 else "category"
        return cls(name, cells, kind, numbers if kind == "number" else [])

    @property
    def missing(self) -> int:
        return sum(is_missing(c) for c in self.cells)

    def distinct(self) -> int:
        return len({c for c in self.cells if not is_missing(c)})

    def bad_cells(self) -> list[int]:
        """Rows of a number column whose text is present but not a finite number."""
        return [i for i, (c, v) in enumerate(zip(self.cells, self.numbers)) if v is None and not is_missing(c)]

    def summary(self) -> str:
        """e.g. "number, 3 missing, 47 distinct" for the Dataset pane and error messages."""
        missing = f", {self.missing} missing" if self.missing else ""
        return f"{'text' if self.kind == 'category' else self.kind}{missing}, {self.distinct()} distinct"


class Problems:
    """Bad cells collected over a whole table, raised as one error: the first few named, all counted."""

    def __init__(self, where: str):
        self.where, self.listed, self.counts = where, [], Counter()

    def add(self, column: str, row: int, line: int, what: str) -> None:
        self.counts[column] += 1
        if len(self.listed) < MAX_LISTED:
            self.listed.append(f"  row {row + 1} (line {line}), column '{column}': {what}")

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


def check_cells(columns: list[Column], lines: list[int], missing: str, categorical: str,
                problems: Problems) -> list[str]:
    """Every bad cell of the feature columns at once, added to `problems`: text in a number column and
    missing values (when data.missing is error); returns the fixes to offer. A text column is refused
    outright when data.categorical is error."""
    for col in columns:
        if col.kind == "category" and categorical == "error":
            sample = ", ".join(repr(c) for c in list(dict.fromkeys(col.cells))[:3])
            raise DataError(f"data.categorical: column '{col.name}' holds text ({sample}, …): set data.categorical: "
                            f"auto to one-hot encode it, or drop it with data.columns: ['-{col.name}']")
        for i in (col.bad_cells() if col.kind == "number" else []):
            problems.add(col.name, i, lines[i], f"'{col.cells[i]}' is not a number")
        if missing == "error":
            for i, text in enumerate(col.cells):
                if is_missing(text):
                    problems.add(col.name, i, lines[i], "missing value")
    fixes = ["fix or blank out the cells that are not numbers"] if any(
        c.kind == "number" and c.bad_cells() for c in columns) else []
    if missing == "error" and any(c.missing for c in columns):
        fixes.append("set data.missing: drop (rows with a gap), mean, median or most_frequent (filled from "
                     "the train split) to handle missing values")
    return fixes


@dataclass
class Encoder:
    """Fill values and categories fitted on train rows; turns cells into a float32 feature matrix."""

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

    def transform(self, cells: dict[str, list[str]], rows: list[int] | None = None):
        """(len(rows), width) float32 numpy array of the given rows (all when None) of `cells` by column."""
        import numpy as np

        n = len(next(iter(cells.values()))) if rows is None else len(rows)
        out = np.zeros((n, len(self.feature_names)), dtype=np.float32)
        j = 0
        for col in self.columns:
            texts = cells[col["name"]]
            picked = texts if rows is None else [texts[i] for i in rows]
            if col["kind"] == "number":
                out[:, j] = [col["fill"] if is_missing(t) else float(t) for t in picked]
                j += 1
                continue
            where = {c: k for k, c in enumerate(col["categories"])}
            for i, text in enumerate(picked):
                k = where.get(col["fill"] if is_missing(text) else text.strip())
                if k is not None:  # a category the train rows never had: all zeros
                    out[i, j + k] = 1.0
            j += len(col["categories"])
        return out

    def to_dict(self) -> dict:
        return {"columns": self.columns, "target": self.target}

    @classmethod
    def from_dict(cls, data: dict) -> Encoder:
        return cls([dict(c) for c in data["columns"]], data.get("target", ""))


def fit_encoder(columns: list[Column], rows: list[int], missing: str, target: str = "") -> Encoder:
    """Fill values (mean, median or most frequent) and categories from the train rows only; no fill value
    when data.missing is error or drop (a gap in new inputs is then an error, as it was in training)."""
    fills = missing not in ("error", "drop")
    fitted = []
    for col in columns:
        present = [col.cells[i] for i in rows if not is_missing(col.cells[i])]
        if col.kind == "number":
            values = [col.numbers[i] for i in rows if col.numbers[i] is not None]
            fill = (_fill(values, missing) if values else 0.0) if fills else None
            fitted.append({"name": col.name, "kind": "number", "fill": fill, "categories": []})
            continue
        counts = Counter(present)
        if len(counts) > MAX_CATEGORIES:
            raise DataError(f"data.categorical: column '{col.name}' has {len(counts):,} distinct texts in the train "
                            f"split (at most {MAX_CATEGORIES} categories): it looks like an id or free text; drop "
                            f"it with data.columns: ['-{col.name}']")
        fill = counts.most_common(1)[0][0] if counts and fills else None
        fitted.append({"name": col.name, "kind": "category", "fill": fill, "categories": sorted(counts)})
    return Encoder(fitted, target)


def _fill(values: list[float], missing: str) -> float:
    if missing == "median":
        return float(statistics.median(values))
    if missing == "most_frequent":
        return float(Counter(values).most_common(1)[0][0])
    return float(statistics.fmean(values))
