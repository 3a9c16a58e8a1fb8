"""LR range test speed: 100 sweep steps on the moons preset with losses pulled every 10 steps (as shipped)
vs every step, and vs a bare index-sliced training loop of the same model and batches, in the same run.

    python bench/bench_lr_find.py [--rounds 5] [--device cpu]

Prints medians and the ratios; always exits 0 (a benchmark, not a test).
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from torchtui.engine import presets
from torchtui.engine.run import lr_find, optim
from torchtui.engine.run.prepare import build_data_and_model


def bare_loop(model, loss_fn, batches, steps: int, device) -> float:
    """The textbook loop: forward, backward, Adam step; one host sync at the end."""
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    began = time.perf_counter()
    total = torch.zeros((), device=device)
    for _ in range(steps):
        xb, yb = next(batches)
        loss = loss_fn(model(xb), yb)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        total += loss.detach()
    total.item()
    return time.perf_counter() - began


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    config = presets.load("moons", [f"device.device={args.device}"])
    device = torch.device(args.device)
    torch.manual_seed(0)
    splits, model, loss_name, _, _ = build_data_and_model(config)
    model, splits = model.to(device), splits.to(device)
    loss_fn = optim.make_loss(loss_name, config.train, splits.task)

    def make(params):
        return optim.make_optimizer(params, config.train)

    def sweep(sync_every: int) -> float:
        lr_find.SYNC_EVERY = sync_every
        batches = lr_find.consecutive_batches(splits, config.train.batch_size, 0, device=device)
        # end 1e-2: no early stop, so every variant takes the same 100 steps
        curve = lr_find.range_test(model, make, loss_fn, batches, device=device, end=1e-2, steps=100)
        assert len(curve.lrs) == 100, curve.stopped
        return curve.seconds

    sweep(10)  # warm-up: first-call imports and allocations
    times: dict[str, list[float]] = {"sweep, sync every 10": [], "sweep, sync every step": [], "bare loop": []}
    for _ in range(args.rounds):  # alternating, so load on the shared machine hits all three alike
        times["sweep, sync every 10"].append(sweep(10))
        times["sweep, sync every step"].append(sweep(1))
        batches = lr_find.consecutive_batches(splits, config.train.batch_size, 0, device=device)
        times["bare loop"].append(bare_loop(model, loss_fn, batches, 100, device))
    lr_find.SYNC_EVERY = 10
    med = {k: statistics.median(v) for k, v in times.items()}
    for name, value in med.items():
        print(f"{name:<24} {value * 1000:8.1f} ms per 100 steps (median of {args.rounds})")
    print(f"sync every step / every 10: {med['sweep, sync every step'] / med['sweep, sync every 10']:.2f}")
    print(f"sweep (as shipped) / bare loop: {med['sweep, sync every 10'] / med['bare loop']:.2f}")


if __name__ == "__main__":
    main()
