"""A run's curves for the runs overlay, read fast: train loss per step from curve.f64 (or the step rows of
metrics.jsonl when it is missing or disagrees), val metrics and live changes from metrics.jsonl."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from torchtui.engine.catalog import METRICS, last_step_row, number, shown
from torchtui.engine.runs import EVENT_ROW, HPARAMS, STEP_ROW, STEP_START, hparams_values, row_kind


@dataclass
class Curves:
    """A run's history as numpy arrays: train loss per step, val metrics per evaluation, live changes."""
    step: object            # numpy arrays of equal length
    epoch: object
    loss: object
    evals: dict = field(default_factory=dict)    # metric → (steps, epochs, values), val split
    changes: list = field(default_factory=list)  # (step, epoch, "lr 0.01") per recorded live change


def read_curves(path: str | Path) -> Curves:
    """The curves in a run folder's metrics.jsonl (complete lines only; damaged ones skipped).

    Step rows are matched by one regular expression over the whole file and converted by numpy in one
    call: 5x faster than a json.loads per line on a 100,000-step run, which the overlay reads ten of.
    """
    import numpy as np

    try:
        data = (Path(path) / "metrics.jsonl").read_bytes()
    except OSError:
        data = b""
    data = data[:data.rfind(b"\n") + 1]
    table = _curve_file(Path(path) / "curve.f64", data)
    if table is None:  # a run from before curve.f64, or one killed between the two writes
        found = STEP_ROW.findall(data)
        flat = b" ".join(b" ".join(row) for row in found).replace(b"null", b"nan")
        table = np.array(flat.split(), dtype=float).reshape(-1, 3)
    evals: dict[str, list] = {}
    changes = []
    for match in EVENT_ROW.finditer(data):
        try:
            row = json.loads(match.group(0))
        except ValueError:
            continue
        if not isinstance(row, dict) or not isinstance(row.get("step"), int):
            continue
        epoch = number(row.get("epoch")) or 0.0
        if row_kind(row) == HPARAMS:  # base_lr moves with lr by the same factor: lr says it
            text = ", ".join(f"{k} {shown(v)}" for k, v in hparams_values(row).items() if k != "base_lr")
            changes.append((row["step"], _epoch_at(table, row["step"], epoch), text))
        elif row.get("split", "val") == "val":
            for name, value in row.items():
                if name in METRICS and number(value) is not None:
                    evals.setdefault(name, []).append((row["step"], epoch, value))
    return Curves(step=table[:, 0], epoch=table[:, 1], loss=table[:, 2], changes=changes,
                  evals={k: tuple(np.array(col, dtype=float) for col in zip(*v)) for k, v in evals.items()})


def _curve_file(path: Path, metrics: bytes):
    """curve.f64 as an (n, 3) array when it agrees with metrics.jsonl (same number of step rows, same last
    step); None otherwise."""
    import numpy as np

    try:
        table = np.fromfile(path, dtype="<f8")
    except (OSError, ValueError):
        return None
    table = table[:len(table) // 3 * 3].reshape(-1, 3)
    last = last_step_row(metrics)
    if last is None or len(table) != metrics.count(STEP_START):
        return None
    return table if int(last.group(1)) == table[-1, 0] else None


def _epoch_at(table, step: int, default: float) -> float:
    """The epoch of a step, from the step rows (hparams rows carry only the step)."""
    import numpy as np

    if not len(table):
        return default
    i = min(int(np.searchsorted(table[:, 0], step)), len(table) - 1)
    return float(table[i, 1])
