"""What the per-rank view costs a data-parallel step (issue 29 item 2): DDP with its built-in all-reduce vs DDP
with torchtui's timed comm hook and the RankClock marks of every step, in one process (gloo, world 1), on the
small MLP whose steps are shortest (the worst case: the marks cost the same on any model).

    python bench/bench_rank_clock.py [--steps 2000] [--rounds 5]

Prints each round's steps/s of both, the median ratio (timed / plain) and the ratio of each one's best round;
rounds alternate, so a busy shared machine slows both alike.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from torchtui.engine.run.prepare import _timed_allreduce
from torchtui.engine.run.rank_clock import RankClock


def model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(2, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 2))


def steps_per_s(timed: bool, steps: int) -> float:
    ddp = DistributedDataParallel(model())
    clock = RankClock(torch.device("cpu"))
    if timed:
        ddp.register_comm_hook(clock, _timed_allreduce)
    opt = torch.optim.Adam(ddp.parameters(), lr=1e-3)
    x, y = torch.randn(64, 2), torch.randint(0, 2, (64,))
    loss_fn = nn.CrossEntropyLoss()
    began = time.perf_counter()
    for _ in range(steps):
        if timed:
            clock.step_start()
        loss = loss_fn(ddp(x), y)
        loss.backward()
        if timed:
            clock.backward_end()
        opt.step()
        opt.zero_grad(set_to_none=True)
        if timed:
            clock.step_end(len(y))
    return steps / (time.perf_counter() - began)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    torch.set_num_threads(1)
    store = os.path.join(tempfile.mkdtemp(prefix="torchtui-bench-"), "rendezvous")
    dist.init_process_group("gloo", init_method=f"file://{store}", rank=0, world_size=1)
    try:
        steps_per_s(True, 200)  # warm-up of both paths
        steps_per_s(False, 200)
        ratios, best = [], [0.0, 0.0]
        for i in range(args.rounds):
            plain, timed = steps_per_s(False, args.steps), steps_per_s(True, args.steps)
            ratios.append(timed / plain)
            best = [max(best[0], plain), max(best[1], timed)]
            print(f"round {i + 1}: plain {plain:,.0f} steps/s, timed {timed:,.0f} steps/s, ratio {timed / plain:.3f}")
        # The best round of each is the one the machine's other load disturbed least.
        print(f"median ratio timed / plain: {statistics.median(ratios):.3f}; best rounds: plain {best[0]:,.0f}, "
              f"timed {best[1]:,.0f} steps/s, ratio {best[1] / best[0]:.3f}")
    finally:
        dist.destroy_process_group()


if __name__ == "__main__":
    main()
