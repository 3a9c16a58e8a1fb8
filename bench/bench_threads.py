"""Torch threads for a run: training steps per second with 1 thread vs one per core (torch's default), in
the same process, alternating, alone and with one busy process beside (the app's UI, another program).

    python bench/bench_threads.py [--rounds 3] [--steps 150] [--presets moons spiral digits-cnn]

Each preset's model and batches as the engine builds them, timed in a bare index-sliced loop (the threads
change the forward and backward passes, not the engine's bookkeeping). Prints per-thread-count medians and
the ratio time(cores threads) / time(1 thread): above 1 means one thread is faster. Always exits 0.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import statistics
import time

import torch

from torchtui.engine import presets
from torchtui.engine.run import optim
from torchtui.engine.run.prepare import build_data_and_model


def busy(stop) -> None:
    """One core's worth of pure-Python work, as a UI or another program would use."""
    x = 0
    while not stop.is_set():
        for _ in range(100_000):
            x += 1


def steps_time(model, loss_fn, x, y, batch: int, steps: int, threads: int) -> float:
    torch.set_num_threads(threads)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    n = len(x)
    began = time.perf_counter()
    for i in range(steps):
        at = (i * batch) % max(1, n - batch)
        loss = loss_fn(model(x[at:at + batch]), y[at:at + batch])
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
    loss.item()
    return time.perf_counter() - began


def measure(name: str, counts: list[int], rounds: int, steps: int) -> dict[int, float]:
    config = presets.load(name, ["device.device=cpu"])
    torch.manual_seed(0)
    splits, model, loss_name, _, _ = build_data_and_model(config)
    loss_fn = optim.make_loss(loss_name, config.train, splits.task)
    x, y, batch = splits.train.x, splits.train.y, config.train.batch_size or 64
    steps_time(model, loss_fn, x, y, batch, 10, 1)  # warm-up: first-call allocations
    times: dict[int, list[float]] = {k: [] for k in counts}
    for _ in range(rounds):
        for k in counts:  # alternating, so the shared machine's load hits each count alike
            times[k].append(steps_time(model, loss_fn, x, y, batch, steps, k))
    return {k: statistics.median(v) for k, v in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=150, help="training steps per timing (default 150)")
    parser.add_argument("--presets", nargs="+", default=["moons", "spiral", "digits-cnn"])
    args = parser.parse_args()
    cores = os.cpu_count() or 1
    counts = sorted({1, max(1, cores - 1), cores})
    load = ", ".join(f"{v:.1f}" for v in os.getloadavg())
    print(f"torch {torch.__version__}, {cores} cores (load average {load}: 'alone' is beside whatever else runs); "
          f"threads {counts}; {args.steps} steps, median of {args.rounds}")
    for beside in (False, True):
        stop = multiprocessing.Event()
        proc = multiprocessing.Process(target=busy, args=(stop,), daemon=True) if beside else None
        if proc:
            proc.start()
        try:
            for name in args.presets:
                med = measure(name, counts, args.rounds, args.steps)
                figures = "  ".join(f"{k} thread(s) {args.steps / med[k]:7.0f} steps/s" for k in counts)
                print(f"{name:<10} {'one busy process beside' if beside else 'alone':<24} {figures}  "
                      f"time({cores})/time(1) = {med[cores] / med[1]:.2f}")
        finally:
            if proc:
                stop.set()
                proc.join(5)


if __name__ == "__main__":
    main()
