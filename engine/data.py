"""Datasets as tensors: synthetic generators, CSV loading, train/val/test splits and shuffled batches."""

from __future__ import annotations

import csv
import dataclasses
import difflib
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import torch

from .config import SOURCE_TASKS, DataConfig

# Integer targets with at most this many distinct values (and fewer than half the rows) are class labels.
MAX_CSV_CLASSES = 20
MISSING = ("", "na", "n/a", "nan", "null", "none", "?")
# Offsets so generating, splitting and epoch shuffles draw from unrelated streams of one seed.
_SPLIT_STREAM = 0x5EED
_MASK63 = (1 << 63) - 1


class DataError(ValueError):
    """The data cannot be loaded; the message names the config field, or the row and column at fault."""


@dataclass
class Splits:
    """Train/val/test tensors plus what a model and the charts need to know about them."""

    task: str
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_val: torch.Tensor
    y_val: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    n_features: int
    n_classes: int
    n_targets: int
    class_names: list[str]
    feature_names: list[str]
    mean: torch.Tensor | None = None
    std: torch.Tensor | None = None

    def sizes(self) -> dict[str, int]:
        return {"train": len(self.x_train), "val": len(self.x_val), "test": len(self.x_test)}

    def to(self, device) -> Splits:
        """A copy with every tensor on `device`, moved once so batches never cross the bus."""
        device = torch.device(device)
        # Host-to-GPU copies may overlap; a GPU-to-host copy must finish before the CPU reads it.
        non_blocking = device.type == "cuda"

        def move(t: torch.Tensor | None) -> torch.Tensor | None:
            return None if t is None else t.to(device, non_blocking=non_blocking)

        tensors = ("x_train", "y_train", "x_val", "y_val", "x_test", "y_test", "mean", "std")
        return dataclasses.replace(self, **{name: move(getattr(self, name)) for name in tensors})


def load_data(cfg: DataConfig) -> Splits:
    """Generate or read the samples, split them, and standardise features with train statistics."""
    if cfg.source == "csv":
        x, y, task, class_names, feature_names = read_csv(cfg)
    else:
        x, y, task, class_names = generate(cfg)
        feature_names = _feature_names(cfg, x.shape[1])
    parts = _split(x, y, cfg)
    (x_train, y_train), (x_val, y_val), (x_test, y_test) = parts
    mean = std = None
    if cfg.standardize:
        mean, std = _fit_standardiser(x_train)
        x_train, x_val, x_test = ((part - mean) / std for part in (x_train, x_val, x_test))
    classification = task != "regression"
    return Splits(
        task=task, x_train=x_train, y_train=y_train, x_val=x_val, y_val=y_val,
        x_test=x_test, y_test=y_test, n_features=x.shape[1],
        n_classes=len(class_names) if classification else 0,
        n_targets=1 if classification else y.shape[1],
        class_names=class_names if classification else [],
        feature_names=feature_names, mean=mean, std=std,
    )


def _feature_names(cfg: DataConfig, n_features: int) -> list[str]:
    if cfg.source == "line":
        return ["x"]
    if cfg.source == "sine":
        return [f"t-{n_features - i}" for i in range(n_features)]
    return [f"x{i}" for i in range(n_features)]


def _split(x: torch.Tensor, y: torch.Tensor, cfg: DataConfig):
    n = len(x)
    n_val, n_test = round(n * cfg.val_fraction), round(n * cfg.test_fraction)
    n_train = n - n_val - n_test
    if n_train <= 0:
        raise DataError(
            f"data.val_fraction: {n} samples leave none to train on "
            f"({n_val} val, {n_test} test; lower val_fraction/test_fraction or add samples)"
        )
    if cfg.shuffle:
        order = torch.randperm(n, generator=_generator(cfg.seed + _SPLIT_STREAM))
        x, y = x[order], y[order]
    bounds = ((0, n_train), (n_train, n_train + n_val), (n_train + n_val, n))
    return [(x[a:b], y[a:b]) for a, b in bounds]


def _fit_standardiser(x_train: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    mean = x_train.mean(0)
    std = x_train.std(0, unbiased=False)
    # A constant feature would divide by ~0 and blow up val/test values that differ; leave its scale alone.
    std = torch.where(std > 1e-6, std, torch.ones_like(std))
    return mean, std


def _generator(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed & _MASK63)


# --- synthetic sources -------------------------------------------------------------------------------


def generate(cfg: DataConfig) -> tuple[torch.Tensor, torch.Tensor, str, list[str]]:
    """X (float32, N×F), y, the task and class names for a synthetic source; the same seed, the same data."""
    make = _GENERATORS.get(cfg.source)
    if make is None:
        choices = ", ".join(_GENERATORS)
        raise DataError(f"data.source: '{cfg.source}' is not a synthetic source (choose one of: {choices})")
    if cfg.source != "line" and cfg.n_samples < 1:
        raise DataError(f"data.n_samples: must be at least 1, got {cfg.n_samples!r}")
    x, y = make(cfg, _generator(cfg.seed))
    task = SOURCE_TASKS[cfg.source]
    if task == "regression":
        return x, y, task, []
    n_classes = 2 if task == "binary" else cfg.classes
    return x, y, task, [str(i) for i in range(n_classes)]


def _line(cfg: DataConfig, gen: torch.Generator):
    if cfg.step <= 0 or cfg.end <= cfg.start:
        raise DataError(f"data.step: start {cfg.start!r}, end {cfg.end!r}, step {cfg.step!r} give no points")
    x = torch.arange(cfg.start, cfg.end, cfg.step, dtype=torch.float32).unsqueeze(1)
    y = cfg.weight * x + cfg.bias
    if cfg.noise > 0:
        y = y + cfg.noise * torch.randn(y.shape, generator=gen)
    return x, y


def _moons(cfg: DataConfig, gen: torch.Generator):
    n_out = cfg.n_samples // 2
    n_in = cfg.n_samples - n_out
    outer = torch.linspace(0, math.pi, n_out)
    inner = torch.linspace(0, math.pi, n_in)
    x = torch.cat([
        torch.stack([outer.cos(), outer.sin()], 1),
        torch.stack([1 - inner.cos(), 0.5 - inner.sin()], 1),
    ])
    y = torch.cat([torch.zeros(n_out), torch.ones(n_in)]).long()
    return x + cfg.noise * torch.randn(x.shape, generator=gen), y


def _circles(cfg: DataConfig, gen: torch.Generator):
    n_out = cfg.n_samples // 2
    n_in = cfg.n_samples - n_out
    # Angles stop short of 2π, as in sklearn, so the first and last points do not coincide.
    outer = torch.arange(n_out) * (2 * math.pi / max(n_out, 1))
    inner = torch.arange(n_in) * (2 * math.pi / max(n_in, 1))
    x = torch.cat([
        torch.stack([outer.cos(), outer.sin()], 1),
        cfg.factor * torch.stack([inner.cos(), inner.sin()], 1),
    ])
    y = torch.cat([torch.zeros(n_out), torch.ones(n_in)]).long()
    return x + cfg.noise * torch.randn(x.shape, generator=gen), y


def _xor(cfg: DataConfig, gen: torch.Generator):
    x = torch.rand((cfg.n_samples, 2), generator=gen) * 2 - 1
    # Labels come from the clean points, so noise blurs the quadrant borders rather than relabelling.
    y = (x[:, 0] * x[:, 1] > 0).long()
    return x + cfg.noise * torch.randn(x.shape, generator=gen), y


def _class_counts(n: int, k: int) -> torch.Tensor:
    return torch.tensor([n // k + (1 if j < n % k else 0) for j in range(k)])


def _spiral(cfg: DataConfig, gen: torch.Generator):
    xs, ys = [], []
    for j, count in enumerate(_class_counts(cfg.n_samples, cfg.classes).tolist()):
        r = torch.linspace(0.0, 1.0, count)
        # Four radians per arm and angular noise (CS231n uses 0.2): arms stay apart up to noise ≈ 0.3.
        theta = torch.linspace(j * 4.0, (j + 1) * 4.0, count) + cfg.noise * torch.randn(count, generator=gen)
        xs.append(torch.stack([r * theta.sin(), r * theta.cos()], 1))
        ys.append(torch.full((count,), j, dtype=torch.long))
    return torch.cat(xs), torch.cat(ys)


def _blobs(cfg: DataConfig, gen: torch.Generator):
    centres = torch.rand((cfg.classes, cfg.features), generator=gen) * 20 - 10
    y = torch.repeat_interleave(torch.arange(cfg.classes), _class_counts(cfg.n_samples, cfg.classes))
    x = centres[y] + (1.0 + cfg.noise) * torch.randn((cfg.n_samples, cfg.features), generator=gen)
    return x, y


def _sine(cfg: DataConfig, gen: torch.Generator):
    # 0.1 rad per step: a default 20-value window sees about a third of a period.
    phase = torch.rand((), generator=gen) * 2 * math.pi
    t = phase + 0.1 * torch.arange(cfg.n_samples + cfg.seq_len, dtype=torch.float32)
    series = t.sin() + cfg.noise * torch.randn(t.shape, generator=gen)
    x = series.unfold(0, cfg.seq_len, 1)[: cfg.n_samples].contiguous()
    y = series[cfg.seq_len: cfg.seq_len + cfg.n_samples].unsqueeze(1)
    return x, y


_GENERATORS = {
    "line": _line, "moons": _moons, "circles": _circles, "xor": _xor,
    "spiral": _spiral, "blobs": _blobs, "sine": _sine,
}


# --- CSV ---------------------------------------------------------------------------------------------


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
        raise DataError(f"data.path: no such file '{path}'")
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


# --- batches -----------------------------------------------------------------------------------------


def epoch_permutation(n: int, seed: int, epoch: int, device) -> torch.Tensor:
    """The sample order for one epoch: the same (seed, epoch) gives the same order, so resumes replay it."""
    # Mix seed and epoch so that (seed, epoch + 1) and (seed + 1, epoch) give unrelated orders.
    gen = _generator(seed * 0x9E3779B97F4A7C15 + epoch)
    # randperm on the CPU generator, then one copy: the same order on every device.
    return torch.randperm(n, generator=gen).to(device)


def num_batches(n: int, batch_size: int) -> int:
    """Batches in an epoch of n samples; batch_size 0 means the whole split at once."""
    if n <= 0:
        return 0
    return 1 if batch_size <= 0 else -(-n // batch_size)


def iter_batches(x: torch.Tensor, y: torch.Tensor, perm: torch.Tensor, batch_size: int,
                 start_batch: int = 0) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """(x, y) batches in `perm` order, the last one possibly short; `start_batch` skips the first ones."""
    n = len(perm)
    size = batch_size if batch_size > 0 else max(n, 1)
    for start in range(start_batch * size, n, size):
        idx = perm[start: start + size]
        yield x[idx], y[idx]
