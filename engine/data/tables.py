"""Reading a table file into typed Arrow columns: CSV with Arrow's multi-threaded reader, Parquet as it is.

Arrow parses a CSV's number columns straight to int64/float64 in C++, several blocks at once; a column that
holds text anywhere is read as strings, and engine/data/tabular.py sorts its cells (numbers, gaps, typos)
with Arrow's compute kernels. Arrow knows no file lines, so the line of a row named in an error is found by
scanning the file with Python's csv module, only then. A file Arrow refuses (a row with too few fields, a
stray byte, a quoted newline) is read by Python's csv module instead: it names the line that is wrong, or
reads the file Arrow could not.
"""

from __future__ import annotations

import csv
import re
import threading
import time
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path

from torchtui.engine.data.tabular import as_bools
from torchtui.engine.errors import DataError, reason_of
from torchtui.engine.files import not_a_file

PARQUET_SUFFIXES = (".parquet", ".pq")
BLOCK_BYTES = 8 << 20  # Arrow reads this much per block (and infers types from the first)
PROGRESS_BYTES = 64 << 20  # files past this size say how their reading goes
PROGRESS_SECONDS = 2.0     # at most this often

# Who hears how a big file's reading goes: a function of one line ("reading t.csv: 312 of 590 MB …"). The engine
# sets it around a run's data load (its lines become Log events: the app's log, the CLI's progress).
progress_listener: ContextVar[Callable[[str], None] | None] = ContextVar("progress_listener", default=None)


@dataclass
class Table:
    """A table file's header (stripped names) and columns (Arrow arrays), and each row's file line."""

    path: str
    header: list[str]
    columns: dict                                  # name → pyarrow ChunkedArray or Array
    rows: int
    line_of: Callable[[int], int | None] = field(default=lambda row: None)


def is_parquet(path: str) -> bool:
    return Path(path).suffix.lower() in PARQUET_SUFFIXES


def read(path_text: str, what: str = "data.path", max_rows: int | None = None) -> Table:
    """The table in a CSV or Parquet file (its first `max_rows` rows only, when given: those are all that is
    read); a file that cannot be read is a DataError naming it and why."""
    file = Path(path_text).expanduser()
    if not file.is_file():
        raise DataError(f"{what}: {not_a_file(file, repr(path_text))}")
    if is_parquet(path_text):
        table = _read_parquet(file, path_text, what, max_rows)
    else:
        table = _read_csv(file, path_text, what, max_rows)
    if table.rows == 0:
        raise DataError(f"{what}: '{path_text}' has a header but no data rows")
    return table


def _read_parquet(file: Path, path_text: str, what: str, max_rows: int | None = None) -> Table:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        if max_rows:
            batches = pq.ParquetFile(file).iter_batches(batch_size=max_rows)
            data = pa.Table.from_batches([next(batches)])
        else:
            data = pq.read_table(file)
    except StopIteration:
        data = pq.read_table(file)
    except (pa.ArrowException, OSError) as err:
        raise DataError(f"{what}: cannot read '{path_text}' as Parquet ({reason_of(err)})") from None
    header = [name.strip() for name in data.column_names]
    _check_header(header, path_text, what)
    return Table(path_text, header, dict(zip(header, data.columns)), data.num_rows)


def _arrow_csv(file: Path, types: dict, max_rows: int | None):
    """Arrow's reading of the file: all of it, several blocks at once, or block by block up to `max_rows`."""
    import pyarrow as pa
    import pyarrow.csv as pacsv

    read = pacsv.ReadOptions(block_size=BLOCK_BYTES)
    convert = pacsv.ConvertOptions(column_types=types, null_values=[""], strings_can_be_null=True,
                                   true_values=[], false_values=[])
    if not max_rows:
        with _Progress(file):
            return pacsv.read_csv(file, read_options=read, convert_options=convert)
    batches, rows = [], 0
    with pacsv.open_csv(file, read_options=read, convert_options=convert) as reader:
        for batch in reader:
            batches.append(batch)
            rows += batch.num_rows
            if rows >= max_rows:
                break
        return pa.Table.from_batches(batches, schema=reader.schema).slice(0, max_rows)


def _read_csv(file: Path, path_text: str, what: str, max_rows: int | None = None) -> Table:
    import pyarrow as pa

    header = _header(file, path_text, what)
    types: dict = {}
    for _ in range(len(header) + 1):
        try:
            data = _arrow_csv(file, types, max_rows)
        except pa.ArrowInvalid as err:
            # Types are inferred from the first block: a later block's text in a number column fails to convert.
            # Read that column as text (its cells are sorted afterwards); anything else: Python's reader says why.
            failed = re.search(r"In CSV column #(\d+): CSV conversion error to (\w+)", str(err))
            if failed and failed.group(2) != "string" and int(failed.group(1)) < len(header):
                types[_raw_names(file)[int(failed.group(1))]] = pa.string()
                continue
            return _read_with_python(file, path_text, what, max_rows)
        break
    else:
        return _read_with_python(file, path_text, what, max_rows)
    if [name.strip() for name in data.column_names] != header:
        return _read_with_python(file, path_text, what, max_rows)  # a first line of blank cells, which Python skips
    # Dates, times and the like were typed by Arrow; a table of features reads them as text (categories).
    odd = {name: pa.string() for name, column in zip(data.column_names, data.columns)
           if not (pa.types.is_integer(column.type) or pa.types.is_floating(column.type)
                   or pa.types.is_string(column.type) or pa.types.is_null(column.type))}
    if odd:
        data = _arrow_csv(file, {**types, **odd}, max_rows)
    columns = dict(zip(header, data.columns))
    blank = _blank_rows(data)
    lines = _LineMap(file)
    if blank is None:
        return Table(path_text, header, columns, data.num_rows, lines)
    # Rows whose every cell is blank (",,,") are skipped, as blank lines are.
    keep = pa.array(~blank)
    kept = blank.size - int(blank.sum())
    import numpy as np

    where = np.flatnonzero(~blank)
    return Table(path_text, header, {name: col.filter(keep) for name, col in columns.items()}, kept,
                 lambda row: lines(int(where[row])))


def _blank_rows(data):
    """A bool numpy array of the rows whose every cell is empty or spaces, or None when there are none."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    if any(column.null_count == 0 and not pa.types.is_string(column.type) for column in data.columns):
        return None  # a number in every row of a column: no row is blank
    blank = np.ones(data.num_rows, dtype=bool)
    for column in data.columns:
        if pa.types.is_string(column.type):
            empty = pc.or_kleene(pc.is_null(column), pc.equal(pc.utf8_trim_whitespace(column), ""))
        else:
            empty = pc.is_null(column)
        blank &= as_bools(empty)
        if not blank.any():
            return None
    return blank


def _header(file: Path, path_text: str, what: str) -> list[str]:
    """The first non-blank row, stripped; checked for repeats."""
    try:
        with open(file, newline="", encoding="utf-8-sig") as handle:
            for row in csv.reader(handle):
                if any(cell.strip() for cell in row):
                    header = [name.strip() for name in row]
                    _check_header(header, path_text, what)
                    return header
    except (UnicodeDecodeError, csv.Error) as err:
        raise DataError(f"{what}: cannot read '{path_text}' as CSV ({err})") from None
    raise DataError(f"{what}: '{path_text}' is empty (expected a header row, then data rows)")


def _raw_names(file: Path) -> list[str]:
    with open(file, newline="", encoding="utf-8-sig") as handle:
        return next(csv.reader(handle))


def _check_header(header: list[str], path_text: str, what: str) -> None:
    duplicates = sorted({name for name in header if header.count(name) > 1})
    if duplicates:
        raise DataError(f"{what}: '{path_text}' header repeats column(s) {', '.join(map(repr, duplicates))}")


class _LineMap:
    """Row → file line, from one scan with Python's csv module the first time a line is asked for."""

    def __init__(self, file: Path):
        self.file, self.lines = file, None

    def __call__(self, row: int) -> int | None:
        if self.lines is None:
            with open(self.file, newline="", encoding="utf-8-sig") as handle:
                reader = csv.reader(handle)
                self.lines = [reader.line_num for row in reader if row][1:]  # Arrow skips empty lines too
        return self.lines[row] if row < len(self.lines) else None


def _read_with_python(file: Path, path_text: str, what: str, max_rows: int | None = None) -> Table:
    import pyarrow as pa

    header, rows = read_rows(file, path_text, what)
    rows = rows[:max_rows or None]
    lines = [line for line, _ in rows]
    columns = {name: pa.array([cells[i] for _, cells in rows], pa.string()) for i, name in enumerate(header)}
    return Table(path_text, header, columns, len(rows), lambda row: lines[row])


def read_rows(file: Path, path_text: str, what: str = "data.path") -> tuple[list[str], list[tuple[int, list[str]]]]:
    """The header and each non-blank data row with its 1-based file line, by Python's csv module."""
    if not file.is_file():
        raise DataError(f"{what}: {not_a_file(file, repr(path_text))}")
    try:
        # utf-8-sig: spreadsheets often prepend a byte-order mark that would otherwise stick to column 1.
        with open(file, newline="", encoding="utf-8-sig") as handle:
            reader = csv.reader(handle)
            lines = [(reader.line_num, row) for row in reader if any(cell.strip() for cell in row)]
    except (UnicodeDecodeError, csv.Error) as err:
        raise DataError(f"{what}: cannot read '{path_text}' as CSV ({err})") from None
    if not lines:
        raise DataError(f"{what}: '{path_text}' is empty (expected a header row, then data rows)")
    header = [name.strip() for name in lines[0][1]]
    _check_header(header, path_text, what)
    rows = lines[1:]
    if not rows:
        raise DataError(f"{what}: '{path_text}' has a header but no data rows")
    for line, row in rows:
        if len(row) != len(header):
            raise DataError(f"{what}: line {line} of '{path_text}' has {len(row)} fields, "
                            f"the header has {len(header)}")
    return header, rows


class _Progress:
    """While Arrow reads a big file, a thread says every PROGRESS_SECONDS how far it got: the bytes this process
    has read since (rchar of /proc/self/io: Arrow reads the file itself, by its path, several blocks at once;
    a Python file in between, to count its reads, made the read 10 % slower), then how long it took. Nothing on
    systems without /proc."""

    def __init__(self, file: Path):
        self.listener = progress_listener.get()
        self.name, self.size = file.name, file.stat().st_size
        self.done = threading.Event()
        self.thread = None

    def __enter__(self) -> _Progress:
        start, self.began = _bytes_read(), time.perf_counter()
        if self.listener is not None and self.size >= PROGRESS_BYTES and start is not None:
            self.thread = threading.Thread(target=self._watch, args=(start, self.began),
                                           name="table progress", daemon=True)
            self.thread.start()
        return self

    def __exit__(self, failed, *exc) -> None:
        self.done.set()
        if self.thread is not None:
            self.thread.join()
            if failed is None:
                seconds = time.perf_counter() - self.began
                self.listener(f"read {self.name}: {self.size / 1e6:,.0f} MB in {seconds:.1f} s "
                              f"({self.size / seconds / 1e6:,.0f} MB/s)")

    def _watch(self, start: int, began: float) -> None:
        while not self.done.wait(PROGRESS_SECONDS):
            now = _bytes_read()
            if now is None:
                return
            read = min(self.size, now - start)
            rate = read / (time.perf_counter() - began) / 1e6
            self.listener(f"reading {self.name}: {read / 1e6:,.0f} of {self.size / 1e6:,.0f} MB "
                          f"({read / self.size:.0%}), {rate:,.0f} MB/s")


def _bytes_read() -> int | None:
    try:
        with open("/proc/self/io") as handle:
            return int(next(line for line in handle if line.startswith("rchar:")).split()[1])
    except (OSError, StopIteration, ValueError):
        return None
