"""The runs browser on long runs: open the list and overlay ten 100,000-step runs.

    python bench/bench_runs.py [--runs 10] [--steps 100000] [--rounds 3]

Writes `--runs` run folders of `--steps` steps each the way the engine does (RunFolder.append_metrics: step
rows, an evaluation every 500 steps, sampled per-layer rows every 10th step, curve.f64), then, cold each
round (a new Catalog and Overlay, so nothing is cached):

1. open: Catalog.scan() of the folder and the table's cells (what `torchtui runs` and the Runs screen do);
2. overlay: every run's curves read, smoothed and put in bounded Series, and the loss and metric overlay
   charts built at 80x20 each (what selecting the ten runs costs);
3. the same overlay with curve.f64 removed (runs written before it: the step rows are matched by regex);
4. the naive way, timed beside them: json.loads of every line of the ten metrics.jsonl files.

Target: open + overlay <= 1 s. Prints medians and ratios; not a test, always exits 0.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import tempfile
import time
from pathlib import Path

from torchtui.engine import catalog, presets
from torchtui.engine.runs import RunFolder
from torchtui.tui.charts.compare import CompareChart
from torchtui.tui.state.compare import Overlay

TARGET_S = 1.0


def write_run(root: Path, index: int, steps: int) -> Path:
    config = presets.load("moons", [f"train.lr={0.001 * (index + 1)}"]).to_dict()
    folder = RunFolder(root / f"20261201-{index:06d}-moons")
    (folder.path / "checkpoints").mkdir(parents=True)
    folder.write_config(config)
    folder.write_origin({"created": 1796000000.0 + index, "preset": "moons"})
    layers = {name: {"grad_norm": 0.5, "update_ratio": 1e-3, "weight_norm": 3.0} for name in ("fc1", "fc2", "head")}
    chunk, rows, curve = 5000, [], []
    for step in range(1, steps + 1):
        loss = 0.7 * math.exp(-step / (5000 * (index + 1))) + 0.05 * ((step * 7919) % 13) / 13
        epoch = round(step / 22, 6)
        if step % 10:
            rows.append(f'{{"type": "step", "step": {step}, "epoch": {epoch}, "loss": {loss!r}, "lr": 0.003}}')
        else:
            rows.append({"type": "step", "step": step, "epoch": epoch, "loss": loss, "lr": 0.003, "grad_norm": 0.4,
                         "acc": 0.9, "layers": layers})
        curve += [step, step / 22, loss]
        if step % 500 == 0:
            rows.append({"type": "eval", "split": "val", "step": step, "epoch": step // 22,
                         "accuracy": 0.9 - 0.3 / (step / 500), "f1": 0.89, "loss": 0.5 / (step / 500)})
        if step % chunk == 0 or step == steps:
            folder.append_metrics(rows, curve)
            rows, curve = [], []
    folder.write_summary({"state": "finished", "run_id": folder.run_id, "epochs": steps // 22, "steps": steps,
                          "seconds": 1000.0, "task": "binary"})
    return folder.path


def open_list(root: Path) -> tuple[float, int]:
    start = time.perf_counter()
    records = catalog.Catalog(root).scan()
    catalog.columns(records, catalog.differing(records))
    return time.perf_counter() - start, len(records)


def overlay(root: Path) -> tuple[float, int]:
    records = catalog.Catalog(root).scan()
    start = time.perf_counter()
    runs = Overlay().runs(records, "step")
    points = 0
    for what in ("loss", "accuracy"):
        chart = CompareChart(what)
        chart.runs = runs
        chart.build_text(80, 20)
        points += chart.points_plotted
    return time.perf_counter() - start, points


def naive(root: Path) -> float:
    start = time.perf_counter()
    for folder in sorted(root.iterdir()):
        [json.loads(line) for line in (folder / "metrics.jsonl").read_text().splitlines()]
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--steps", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "runs"
        start = time.perf_counter()
        paths = [write_run(root, i, args.steps) for i in range(args.runs)]
        size = sum((p / "metrics.jsonl").stat().st_size for p in paths) / 1e6
        print(f"{args.runs} runs of {args.steps:,} steps written in {time.perf_counter() - start:.1f} s "
              f"({size:.0f} MB of metrics.jsonl)")
        opened, overlaid, plain, slow = [], [], [], []
        for _ in range(args.rounds):
            seconds, listed = open_list(root)
            opened.append(seconds)
            seconds, points = overlay(root)
            overlaid.append(seconds)
            plain.append(naive(root))
        for path in paths:  # runs from before curve.f64
            (path / "curve.f64").rename(path / "curve.f64.off")
        for _ in range(args.rounds):
            slow.append(overlay(root)[0])
        o, v, n, s = (statistics.median(x) for x in (opened, overlaid, plain, slow))
        print(f"open (scan + table cells, {listed} runs):   {o * 1000:7.0f} ms")
        print(f"overlay ({points} points plotted):       {v * 1000:7.0f} ms")
        print(f"open + overlay:                          {(o + v) * 1000:7.0f} ms   target <= {TARGET_S * 1000:.0f} ms "
              f"{'PASS' if o + v <= TARGET_S else 'MISS'}")
        print(f"overlay without curve.f64 (regex):       {s * 1000:7.0f} ms   ({s / v:.1f}x the overlay)")
        print(f"json.loads of every line (naive):        {n * 1000:7.0f} ms   ({n / (o + v):.1f}x open + overlay)")


if __name__ == "__main__":
    main()
