"""An append-only (x, y) history with bounded memory and min/max downsampling to a chart's width."""

from __future__ import annotations

import itertools
import math
from array import array
from collections.abc import Iterable

# Buckets a level keeps before it is dropped. 2**12 points draw any chart up to 2,048 columns exactly (a
# chart is a few hundred); past that the coarser levels (buckets of 2, 4, 8 ... points) hold the shape.
# Storage is array('d'), 8 bytes a value: a series tops out near 2 x 4,096 buckets x 32 bytes = 256 KiB
# however long the run, and the sampled series (every 10th step) level off by 80k steps, not 1.3M.
RAW_CAP = 2 ** 12
BULK = 256  # points from which extend() goes through numpy

Bucket = tuple[float, float, float, float]  # (x at min, y min, x at max, y max)


class Series:
    """(x, y) points appended over a run; `downsample(n)` returns at most 2n points in O(n).

    Level k stores buckets of 2**k consecutive finite points as (x at min, y min, x at max, y max); a
    level is dropped once it holds more than `cap` buckets, so memory stays bounded while coarser levels
    keep the extremes. Non-finite y values count in `len` and `last` but are kept out of the levels:
    a NaN would poison every min/max above it.
    """

    def __init__(self, cap: int = RAW_CAP):
        self.cap = max(2, int(cap))
        self.clear()

    def clear(self) -> None:
        """Forget every point."""
        self._levels: list[tuple[array, ...] | None] = [_new_level()]
        self._pending: list[Bucket | None] = [None]  # a bucket waiting for its right-hand partner
        self._count = 0
        self._last: tuple[float, float] | None = None

    def __len__(self) -> int:
        return self._count

    @property
    def last(self) -> tuple[float, float] | None:
        """The last (x, y) appended, finite or not, or None."""
        return self._last

    @property
    def stored(self) -> int:
        """How many buckets the levels hold now (what bounds the memory)."""
        return sum(len(level[0]) for level in self._levels if level is not None)

    def append(self, x: float, y: float) -> None:
        """Add one point."""
        x, y = float(x), float(y)
        self._count += 1
        self._last = (x, y)
        if math.isfinite(y):
            self._push((x, y, x, y))

    def extend(self, xs: Iterable[float], ys: Iterable[float]) -> None:
        """Add points pairwise from two sequences of the same length (the same as appending each in turn).

        Long batches (a run's history replayed on attach) go level by level through numpy: one pass per
        level instead of a Python loop per point and level."""
        if not hasattr(xs, "dtype") or not hasattr(ys, "dtype"):  # numpy arrays go in as they are
            xs, ys = list(xs), list(ys)
        if len(xs) < BULK:
            for x, y in zip(xs, ys):
                self.append(x, y)
            return
        import numpy as np

        x = np.asarray(xs, dtype=float)
        y = np.asarray(ys, dtype=float)
        self._count += len(x)
        self._last = (float(x[-1]), float(y[-1]))
        keep = np.isfinite(y)
        self._push_many((x[keep], y[keep], x[keep], y[keep]))

    def _push_many(self, columns) -> None:
        """_push for many buckets in order: at each level store them, pair them (after the pending one), go up."""
        import numpy as np

        level = 0
        while len(columns[0]):
            store = self._levels[level]
            if store is not None and len(store[0]) + len(columns[0]) > self.cap:
                self._levels[level] = None  # it would be dropped once full: skip filling it
            elif store is not None:
                for target, values in zip(store, columns):
                    target.extend(values.tolist())
            partner = self._pending[level]
            if partner is not None:
                columns = tuple(np.concatenate(([p], c)) for p, c in zip(partner, columns))
            n = len(columns[0])
            self._pending[level] = tuple(float(c[-1]) for c in columns) if n % 2 else None
            a = tuple(c[0:n - 1:2] for c in columns)
            b = tuple(c[1:n:2] for c in columns)
            lo = a[1] <= b[1]
            hi = a[3] >= b[3]
            columns = (np.where(lo, a[0], b[0]), np.where(lo, a[1], b[1]), np.where(hi, a[2], b[2]),
                       np.where(hi, a[3], b[3]))
            level += 1
            if len(columns[0]) and level == len(self._levels):
                self._levels.append(_new_level())
                self._pending.append(None)

    def _push(self, bucket: Bucket) -> None:
        level = 0
        while True:
            store = self._levels[level]
            if store is not None:
                xlo, ylo, xhi, yhi = store
                xlo.append(bucket[0])
                ylo.append(bucket[1])
                xhi.append(bucket[2])
                yhi.append(bucket[3])
                if len(xlo) > self.cap:
                    self._levels[level] = None
            partner = self._pending[level]
            if partner is None:
                self._pending[level] = bucket
                return
            self._pending[level] = None
            bucket = _merge(partner, bucket)
            level += 1
            if level == len(self._levels):
                self._levels.append(_new_level())
                self._pending.append(None)

    def truncate_after(self, x: float) -> None:
        """Forget the points after `x` (a run that went back to step x). Exact while the raw level is kept (the
        first RAW_CAP points); past that the finest level left is kept, each bucket's extremes as two points."""
        if self._last is None or self._last[0] <= x:
            return
        level = next((k for k, store in enumerate(self._levels) if store is not None), 0)
        kept = [b for b in self._items(level) if max(b[0], b[2]) <= x]
        self.clear()
        for bucket in kept:
            if level == 0 or bucket[0] == bucket[2]:
                self.append(bucket[0], bucket[1])
            else:
                for px, py in sorted(((bucket[0], bucket[1]), (bucket[2], bucket[3]))):
                    self.append(px, py)

    def downsample(self, buckets: int) -> tuple[list[float], list[float]]:
        """At most 2*buckets points in x order keeping each bucket's min and max (all points if few)."""
        groups = self._groups(buckets)
        if groups is None:
            return self._raw()
        out_x: list[float] = []
        out_y: list[float] = []
        for lo, hi in groups:
            first, second = ((lo[0], lo[1]), (hi[2], hi[3])) if lo[0] <= hi[2] else ((hi[2], hi[3]), (lo[0], lo[1]))
            out_x.append(first[0])
            out_y.append(first[1])
            if second != first:
                out_x.append(second[0])
                out_y.append(second[1])
        return out_x, out_y

    def midline(self, buckets: int) -> tuple[list[float], list[float]]:
        """One point per bucket, halfway between its min and max (all points if few).

        For series that are already smooth (an EMA): their min/max envelope is a thin zigzag that costs
        plotext several times more to draw than the line it stands for.
        """
        groups = self._groups(buckets)
        if groups is None:
            return self._raw()
        return [(lo[0] + hi[2]) / 2 for lo, hi in groups], [(lo[1] + hi[3]) / 2 for lo, hi in groups]

    def _raw(self) -> tuple[list[float], list[float]]:
        xs, _, _, ys = self._levels[0]
        return list(xs), list(ys)

    def _groups(self, buckets: int) -> list[tuple[Bucket, Bucket]] | None:
        """(lowest, highest) bucket of each of at most `buckets` groups; None when the raw points fit."""
        buckets = max(1, int(buckets))
        level = self._level_for(buckets)
        if level == 0:
            return None
        items = self._items(level)
        n = len(items)
        if n <= buckets:
            return [(item, item) for item in items]
        groups = (items[g * n // buckets:(g + 1) * n // buckets] for g in range(buckets))
        return [(min(group, key=_ymin), max(group, key=_ymax)) for group in groups]

    def _level_for(self, buckets: int) -> int:
        """The finest stored level that needs no more than `buckets` groups of at most two of its buckets."""
        for k, store in enumerate(self._levels):
            if store is None:
                continue
            if len(store[0]) + k <= 2 * buckets:  # k pending buckets of finer levels ride along
                return k
        return len(self._levels) - 1

    def _items(self, level: int) -> list[Bucket]:
        """Level `level`'s buckets, then the not yet paired buckets of finer levels (the newest points)."""
        store = self._levels[level]
        items = list(zip(*store))
        items += [b for b in reversed(self._pending[:level]) if b is not None]
        return items


def _new_level() -> tuple[array, ...]:
    return array("d"), array("d"), array("d"), array("d")


def _merge(a: Bucket, b: Bucket) -> Bucket:
    lo = a if a[1] <= b[1] else b
    hi = a if a[3] >= b[3] else b
    return lo[0], lo[1], hi[2], hi[3]


def _ymin(bucket: Bucket) -> float:
    return bucket[1]


def _ymax(bucket: Bucket) -> float:
    return bucket[3]


def last_y(series: Series | None) -> float | None:
    """The y of a series' last point, or None."""
    return series.last[1] if series is not None and series.last is not None else None


def ema(values: Iterable[float], alpha: float, start: float | None = None,
        gaps: Iterable[float] | None = None) -> list[float]:
    """Exponential moving average, one output per input, continuing from `start` when given.

    A non-finite value leaves the average where it was (a NaN would stick forever); before the first
    finite value the output is NaN, which charts skip. `gaps` (steps since the previous value) weigh
    values of a series sampled every few steps as if every step had been seen: 1 - (1 - alpha) ** gap.
    """
    avg = start if start is not None and math.isfinite(start) else None
    out = []
    for v, gap in zip(values, gaps if gaps is not None else itertools.repeat(1)):
        if math.isfinite(v):
            # Steps that go back or repeat (a run resumed from an earlier checkpoint) weigh as one step: a
            # negative gap overflowed the power (OverflowError: Numerical result out of range).
            a = alpha if not gap > 1 else 1 - (1 - alpha) ** min(gap, 1e6)
            avg = v if avg is None else avg + a * (v - avg)
        out.append(math.nan if avg is None else avg)
    return out
