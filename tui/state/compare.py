"""The runs overlay: each selected run's curves, read once per change of its files, as bounded Series."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

from torchtui.engine import curves
from torchtui.engine.history import SMOOTH_ALPHA
from torchtui.engine.history.series import Series
from torchtui.tui.state import lineage

AXES = ("step", "epoch")
CHUNK = 64  # ema_array's block: (1 - alpha) ** -CHUNK stays small, so the blocks lose no precision
LABEL_WIDTH = 22  # a legend entry at most, so that a few fit beside a chart's title


@dataclass
class OverlayRun:
    """One run on the overlay: its label, smoothed train loss, val metrics and live changes, on one x axis."""
    run_id: str
    label: str
    loss: Series
    evals: dict[str, Series] = field(default_factory=dict)
    changes: list[tuple[float, str]] = field(default_factory=list)  # (x, "lr 0.01")


class Overlay:
    """Curves of any number of runs. A run's files are reread only when they changed (a live run grows)."""

    def __init__(self):
        self._curves: dict[str, tuple[tuple, curves.Curves]] = {}
        self._built: dict[tuple, OverlayRun] = {}

    def runs(self, records: list, axis: str = "step") -> list[OverlayRun]:
        """The overlay lines of `records` (catalog.RunRecord), in their order, against `axis`. A branch's line
        starts with its parent's curve up to the branch point, so branches of one run overlaid fork from it."""
        out = []
        for record in records:
            key, run = self._read(record.path)
            branch = lineage.branch_point(record.path)
            parent = self._read(branch.parent_dir) if branch is not None else (None, None)
            built_key = (record.path, axis, key, branch, parent[0])
            built = self._built.get(built_key)
            if built is None:
                before = (parent[1], branch.step) if branch is not None and parent[1] is not None else None
                built = self._built[built_key] = _build(record, run, axis, before)
            out.append(built)
        return out

    def _read(self, path: str) -> tuple[tuple, curves.Curves]:
        """A run folder's curves, read again only when its files changed."""
        key = _files_key(path)
        cached = self._curves.get(path)
        if cached is None or cached[0] != key:
            cached = self._curves[path] = (key, curves.read_curves(path))
            self._built = {k: v for k, v in self._built.items() if k[0] != path}
        return cached

    def forget(self, path: str) -> None:
        self._curves.pop(path, None)
        self._built = {k: v for k, v in self._built.items() if k[0] != path}


def _files_key(path: str) -> tuple:
    out = []
    for name in ("metrics.jsonl", "curve.f64"):
        try:
            info = (Path(path) / name).stat()
            out.append((info.st_size, info.st_mtime_ns))
        except OSError:
            out.append(None)
    return tuple(out)


def _build(record, run: curves.Curves, axis: str, before: tuple | None = None) -> OverlayRun:
    """`before`: (the parent's curves, the branch step) for a branch: the parent's points up to that step (and
    before the branch's own first one) come first, smoothed as one curve with the branch's."""
    import numpy as np

    x, losses = (run.epoch if axis == "epoch" else run.step), run.loss
    eval_columns = dict(run.evals)
    if before is not None:
        parent, step = before
        first = run.step[0] if len(run.step) else math.inf
        keep = (parent.step <= step) & (parent.step < first)
        x = np.concatenate([(parent.epoch if axis == "epoch" else parent.step)[keep], x])
        losses = np.concatenate([parent.loss[keep], losses])
        for name, (steps, epochs, values) in parent.evals.items():
            own = eval_columns.get(name, (np.array([]),) * 3)
            first_eval = own[0][0] if len(own[0]) else math.inf
            kept = (steps <= step) & (steps < first_eval)
            eval_columns[name] = tuple(np.concatenate([a[kept], b]) for a, b in zip((steps, epochs, values), own))
    loss = Series()
    loss.extend(x, ema_array(losses, SMOOTH_ALPHA))
    evals = {}
    for name, (steps, epochs, values) in eval_columns.items():
        series = evals[name] = Series()
        series.extend(epochs if axis == "epoch" else steps, values)
    changes = [(epoch if axis == "epoch" else step, text) for step, epoch, text in run.changes]
    return OverlayRun(record.run_id, label(record), loss, evals, changes)


def label(record) -> str:
    """A short legend entry: the run's time and name (20261202-031904-moons → 031904-moons)."""
    run_id = record.run_id
    short = run_id[9:] if len(run_id) > 16 and run_id[8:9] == "-" and run_id[:8].isdigit() else run_id
    return middle_cut(short, LABEL_WIDTH)


def middle_cut(text: str, width: int) -> str:
    """`text` in `width` characters, cut in the middle: its start (a run's time) and its end stay, for the end
    is what tells runs of one name apart (a sweep's trials: …sweep-t003, …sweep-t004). The end starts at a
    word ('-') when one starts near its cut."""
    if len(text) <= width:
        return text
    head = min(7, width // 3)
    room = width - head - 1
    tail = text[-room:]
    dash = tail.find("-")
    if 0 <= dash < room // 2:
        tail = tail[dash + 1:]
    return text[:head] + "…" + tail


def ema_array(values, alpha: float):
    """ema() of series.py for a whole numpy array at once: the same values (non-finite ones keep the
    average where it was, NaN before the first finite one), computed in blocks of CHUNK without a Python
    loop per point — 100,000 losses take a few milliseconds instead of tens."""
    import numpy as np

    x = np.asarray(values, dtype=float)
    out = np.full(len(x), math.nan)
    finite = np.flatnonzero(np.isfinite(x))
    if not len(finite):
        return out
    v = x[finite]
    n = len(v)
    pad = -n % CHUNK
    blocks = np.concatenate([v, np.zeros(pad)]).reshape(-1, CHUNK)
    decay = (1 - alpha) ** np.arange(CHUNK)
    # Within a block, from a zero start: y[k] = alpha * sum_j<=k (1-alpha)^(k-j) x[j].
    inner = alpha * decay * np.cumsum(blocks / decay, axis=1)
    carry = (1 - alpha) * decay  # what a block's starting value still weighs at each position
    starts = np.empty(len(blocks))
    prev = v[0]  # the first value starts the average (ema() sets avg = v)
    ends = inner[:, -1]
    tail = (1 - alpha) ** CHUNK
    for b in range(len(blocks)):
        starts[b] = prev
        prev = ends[b] + tail * prev
    smooth = (inner + starts[:, None] * carry).reshape(-1)[:n]
    out[finite] = smooth
    # Non-finite points carry the last average forward.
    idx = np.maximum.accumulate(np.where(np.isfinite(x), np.arange(len(x)), -1))
    seen = idx >= 0
    out[seen] = out[idx[seen]]
    return out
