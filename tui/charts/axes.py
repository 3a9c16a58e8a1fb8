"""Chart axes of our own: round y ticks (linear or log) with short labels, and marker labels that never overlap."""

from __future__ import annotations

import itertools
import math

MAX_TICKS = 6
SUFFIXES = ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k"))


def short_number(value: float, digits: int = 3) -> str:
    """A number in at most `digits` significant digits, short: 0.25, 12.5, 3.4k, 1.2M, 2e-5, 1e20.

    Thousands to trillions take a suffix, anything beyond or below 1e-3 takes an exponent: an axis label
    stays a few characters wide whatever the data does (a diverged loss reaches 1e20).
    """
    if not math.isfinite(value):
        return str(value)
    if value == 0:
        return "0"
    rounded = float(f"{value:.{digits}g}")
    size = abs(rounded)
    if size >= 1e15 or size < 1e-3:
        return _exponent(rounded, digits)
    for scale, suffix in SUFFIXES:
        if size >= scale:
            return _fixed(rounded / scale, digits) + suffix
    return _fixed(rounded, digits)


def _fixed(value: float, digits: int) -> str:
    """`value` (already rounded) without an exponent: 30, not 3e+01 (`g` takes one when the whole part has more
    digits than asked for)."""
    whole = len(str(int(abs(value)))) if abs(value) >= 1 else 0
    return _trim(f"{value:.{max(digits, whole)}g}")


def _trim(text: str) -> str:
    return text.rstrip("0").rstrip(".") if "." in text and "e" not in text else text


def tick_labels(ticks: list[float]) -> list[str]:
    """Labels for the ticks in the fewest digits that still tell each tick's value (0.25, not 0.2)."""
    spacing = min((abs(b - a) for a, b in itertools.pairwise(ticks) if b != a), default=abs(ticks[0]) if ticks else 1.0)
    # One style per axis: if a tick needs an exponent (below 1e-3, or 1e15 and up), all of them take one.
    exponent = any(t and not 1e-3 <= abs(t) < 1e15 for t in ticks)
    for digits in range(1, 7):
        if all(abs(float(f"{t:.{digits}g}") - t) <= spacing * 1e-3 for t in ticks):
            break
    return [_exponent(t, digits) if exponent and t else short_number(t, digits) for t in ticks]


def _exponent(value: float, digits: int) -> str:
    mantissa, exponent = f"{float(f'{value:.{digits}g}'):.{max(0, digits - 1)}e}".split("e")
    return f"{_trim(mantissa)}e{int(exponent)}"


def linear_ticks(lo: float, hi: float, count: int) -> list[float]:
    """About `count` ticks at a round spacing (1, 2 or 5 times a power of ten) within lo..hi."""
    if not hi > lo:
        return [lo]
    raw = (hi - lo) / max(1, count)
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= raw * 0.999)
    first = math.ceil(lo / step - 1e-9)
    ticks = [k * step for k in range(first, math.floor(hi / step + 1e-9) + 1)]
    return [0.0 if abs(t) < step * 1e-9 else t for t in ticks] or [lo]


def log_ticks(lo: float, hi: float, count: int) -> list[float]:
    """Decades within lo..hi (every second or third when many), else 1-2-5 steps, else linear ticks."""
    if not (lo > 0 and hi > lo):
        return [lo]
    a, b = math.log10(lo), math.log10(hi)
    decades = list(range(math.ceil(a - 1e-9), math.floor(b + 1e-9) + 1))
    if len(decades) >= 2:
        every = max(1, math.ceil(len(decades) / max(2, count)))
        return [10.0 ** k for k in decades[::every]]
    steps = [m * 10.0 ** k for k in range(math.floor(a) - 1, math.ceil(b) + 1) for m in (1, 2, 5)]
    inside = [t for t in steps if lo * (1 - 1e-9) <= t <= hi * (1 + 1e-9)]
    return inside if 2 <= len(inside) <= count + 1 else linear_ticks(lo, hi, min(count, 4))


def y_ticks(lo: float, hi: float, rows: int, log: bool) -> list[float]:
    """Ticks for a y axis of `rows` canvas rows over lo..hi (a tick every 2 rows or so, at most MAX_TICKS)."""
    count = max(2, min(MAX_TICKS, rows // 2))
    ticks = log_ticks(lo, hi, count) if log else linear_ticks(lo, hi, count)
    return ticks if len(ticks) >= 2 or not hi > lo else [lo, hi]


def place_labels(marks: list[tuple[float, str]], x0: float, x1: float, cols: int,
                 limit: int = 4) -> list[tuple[float, str, str]]:
    """The newest marker labels that fit side by side on one row of `cols` columns over x0..x1.

    Returns (x, text, alignment): a label reads rightwards from its line, or leftwards where it would
    run off the right edge; a label that would touch one already placed is left out.
    """
    placed: list[tuple[float, str, str]] = []
    taken: list[tuple[int, int]] = []
    span = (x1 - x0) or 1.0
    for x, text in reversed(marks):
        if len(placed) >= limit:
            break
        col = round((x - x0) / span * max(0, cols - 1))
        start, align = col, "left"
        if col + len(text) > cols:
            start, align = col - len(text) + 1, "right"
        end = start + len(text)
        if start < 0 or any(start <= b and a <= end for a, b in taken):  # a column of space between labels
            continue
        taken.append((start, end))
        placed.append((x, text, align))
    return placed
