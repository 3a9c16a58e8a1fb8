"""Times a LossChart redraw (downsample + plotext build + Text) at 150x40 for 1,000 vs 1,000,000 steps."""

from __future__ import annotations

import argparse
import math
import random
import statistics
import time

from rich.text import Text

from torchtui.engine import protocol as p
from torchtui.engine.history import SMOOTH_ALPHA, RunHistory
from torchtui.engine.history.series import ema
from torchtui.tui.charts.loss import LossChart

WIDTH, HEIGHT = 150, 40


def expected(step: int, steps: int) -> float:
    return 0.7 * math.exp(-3 * step / steps) + 0.05


def noisy_history(steps: int, seed: int = 0) -> tuple[RunHistory, float]:
    """A run of `steps` noisy minibatch losses, 100 val evaluations and two live lr changes; ingest seconds."""
    rng = random.Random(seed)
    history = RunHistory()
    history.apply(p.RunStarted(run_id="bench", run_dir="runs/bench", name="bench", task="binary", loss="bce",
                               device="cpu", params=1, trainable=1, splits={}, steps_per_epoch=steps // 100,
                               total_steps=steps, epochs=100, start_step=0, start_epoch=0, config={}))
    xs = range(1, steps + 1)
    ys = [expected(s, steps) + 0.2 * rng.random() for s in xs]
    started = time.perf_counter()
    history.train_loss.extend(xs, ys)
    history.train_loss_smooth.extend(xs, ema(ys, SMOOTH_ALPHA))
    ingest = time.perf_counter() - started
    for k in range(1, 101):
        step = k * steps // 100
        history.apply(p.EvalResult("bench", "val", step, k,
                                   {"loss": expected(step, steps) + 0.1 + 0.02 * rng.random()}))
    history.apply(p.HparamsChanged("bench", steps // 3, {"lr": [0.01, 0.02]}))
    history.apply(p.HparamsChanged("bench", 2 * steps // 3, {"lr": [0.02, 0.01]}))
    return history, ingest


def redraw_ms(charts: list[LossChart], repeats: int) -> list[float]:
    """Median build time of each chart; builds alternate so drift on a shared machine hits all alike."""
    times: list[list[float]] = [[] for _ in charts]
    for chart in charts:
        chart.build_text(WIDTH, HEIGHT)  # warm-up: the first build pays plotext's one-off setup
    for _ in range(repeats):
        for chart, samples in zip(charts, times):
            started = time.perf_counter()
            chart.build_text(WIDTH, HEIGHT)
            samples.append(time.perf_counter() - started)
    return [statistics.median(samples) * 1e3 for samples in times]


def ansi_round_trip_ms(chart: LossChart, repeats: int) -> float:
    """What PlotextPlot.render does with the plot the chart last set up: build the ANSI string, parse it."""
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        Text.from_ansi(chart.plt.build())
        times.append(time.perf_counter() - started)
    return statistics.median(times) * 1e3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=31)
    args = parser.parse_args()
    sizes = (1_000, 1_000_000)
    charts = []
    for steps in sizes:
        history, ingest = noisy_history(steps)
        charts.append(LossChart(history))
        print(f"{steps:>9,} steps ingested in {ingest:.2f} s "
              f"(loss + its EMA: {2 * steps / ingest / 1e6:.2f} M points/s)")
    results = redraw_ms(charts, args.repeats)
    for steps, chart, ms in zip(sizes, charts, results):
        print(f"{steps:>9,} steps: LossChart {WIDTH}x{HEIGHT} redraw {ms:5.1f} ms (median of {args.repeats}), "
              f"{chart.points_plotted} points handed to plotext")
    print(f"ratio 1,000,000 / 1,000 steps: {results[1] / results[0]:.2f}")
    ansi = ansi_round_trip_ms(charts[1], args.repeats)
    print(f"same 1,000,000-step plot through plt.build() + Text.from_ansi (textual-plotext's render): {ansi:.1f} ms, "
          f"ratio to the matrix read: {ansi / results[1]:.2f}")


if __name__ == "__main__":
    main()
