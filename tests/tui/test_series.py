"""Series: bounded memory, min/max-preserving downsampling in x order, NaN handling, and the EMA helper."""

import itertools
import math
import random

from hypothesis import given, settings
from hypothesis import strategies as st

from torchtui.engine.history.series import Series, ema


def noisy(n: int, seed: int = 0) -> list[float]:
    rng = random.Random(seed)
    return [math.exp(-i / (n / 3)) * (1 + 0.5 * rng.random()) for i in range(n)]


def test_memory_stays_bounded_after_a_million_appends():
    s = Series()
    ys = noisy(1_000_000)
    s.extend(range(1_000_000), ys)
    assert len(s) == 1_000_000
    assert s.stored <= 2 * s.cap < 200_000  # levels finer than the cap are gone, the rest halve each time
    xs, out = s.downsample(150)
    assert len(out) <= 300
    assert min(out) == min(ys) and max(out) == max(ys)
    assert xs == sorted(xs) and xs[0] >= 0 and xs[-1] > 990_000  # covers the run up to its newest points


def test_few_points_come_back_as_they_are():
    s = Series()
    s.extend([1, 2, 3], [0.5, 0.25, 0.75])
    assert s.downsample(10) == ([1.0, 2.0, 3.0], [0.5, 0.25, 0.75])
    assert s.last == (3.0, 0.75) and len(s) == 3


def test_empty_series():
    s = Series()
    assert len(s) == 0 and s.last is None and s.downsample(20) == ([], [])


@settings(max_examples=60, deadline=None)
@given(ys=st.lists(st.floats(-1e6, 1e6), min_size=1, max_size=3000), buckets=st.integers(1, 200),
       cap=st.integers(2, 512))
def test_downsample_keeps_extremes_in_x_order_within_budget(ys, buckets, cap):
    s = Series(cap=cap)
    s.extend(range(len(ys)), ys)
    xs, out = s.downsample(buckets)
    assert len(out) == len(xs) <= max(2 * buckets, 1)
    assert min(out) == min(ys) and max(out) == max(ys)
    assert xs == sorted(xs)
    assert all(ys[int(x)] == y for x, y in zip(xs, out))  # every point is a real one


def test_non_finite_values_stay_out_of_the_picture():
    s = Series(cap=8)
    ys = [1.0, math.nan, 3.0, math.inf, -math.inf, 2.0] * 50
    s.extend(range(len(ys)), ys)
    assert len(s) == 300 and math.isinf(s.last[1]) is False and s.last == (299.0, 2.0)
    s.append(300, math.nan)
    assert math.isnan(s.last[1])  # last reports what arrived: a diverged loss shows as nan
    xs, out = s.downsample(10)
    assert out and all(math.isfinite(y) for y in out)
    assert min(out) == 1.0 and max(out) == 3.0


def test_clear_forgets_everything():
    s = Series(cap=4)
    s.extend(range(100), range(100))
    s.clear()
    assert len(s) == 0 and s.stored == 0 and s.downsample(5) == ([], [])


def test_ema_smooths_continues_and_skips_nan():
    assert ema([], 0.5) == []
    assert ema([2.0, 4.0, 4.0], 0.5) == [2.0, 3.0, 3.5]
    assert ema([4.0], 0.5, start=2.0) == [3.0]  # continues a previous batch
    out = ema([math.nan, 1.0, math.nan, 3.0], 0.5)
    assert math.isnan(out[0]) and out[1:] == [1.0, 1.0, 2.0]
    assert ema([1.0], 0.5, start=math.nan) == [1.0]


def test_midline_is_one_point_per_bucket_inside_the_envelope():
    s = Series(cap=64)
    ys = noisy(10_000)
    s.extend(range(10_000), ys)
    xs, mid = s.midline(50)
    assert len(mid) <= 50 and xs == sorted(xs)
    assert min(ys) <= min(mid) and max(mid) <= max(ys)
    few = Series()
    few.extend([1, 2], [3.0, 4.0])
    assert few.midline(50) == ([1.0, 2.0], [3.0, 4.0])


@settings(max_examples=200, deadline=None)
@given(st.lists(st.one_of(st.floats(-1e6, 1e6), st.just(float("nan"))), min_size=0, max_size=3000),
       st.lists(st.integers(1, 900), min_size=1, max_size=8), st.integers(2, 64))
def test_a_long_extend_equals_appending_each_point(ys, chunks, cap):
    """extend() of long batches (through numpy) leaves exactly the state point-by-point appends do."""
    one, many = Series(cap=cap), Series(cap=cap)
    for i, y in enumerate(ys):
        one.append(i, y)
    start = 0
    for size in itertools.cycle(chunks):
        if start >= len(ys):
            break
        part = range(start, min(len(ys), start + size * 10))
        many.extend(list(part), [ys[i] for i in part])
        start = part.stop
    assert len(one) == len(many) and one.stored == many.stored
    assert one.last == many.last or (one.last and math.isnan(one.last[1]) and math.isnan(many.last[1]))
    for buckets in (1, 3, 10, 100, 5000):
        assert one.downsample(buckets) == many.downsample(buckets)
        assert one.midline(buckets) == many.midline(buckets)
