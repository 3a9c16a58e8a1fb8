"""What in-memory snapshots (issue 27) cost, what they hold, and how fast a rewind branches.

    python bench/bench_snapshots.py [--rounds 3] [--quick] [--only small|big] [--threads N]

1. Overhead: the same engine run (bench_engine's small 2-64-64-2 and big 784-512-512-10 MLPs, InProcessHost,
   every statistic on) with train.snapshots on at the defaults (auto interval, auto memory) and off, alternately
   in one process; the figure is the ratio of the median samples/s (on / off; target >= 0.98). The guard is off
   in both (it reads what the flush pulls anyway; measured with it on too, as "on+guard").
   Beside it, the direct cost: the median time one snapshot copy took on the training thread (Snapshotter.cost)
   and its share at the auto interval (cost / interval): what the ratio measures, without the machine's noise.
2. Memory: bytes of one snapshot per MB of parameters (float32 weights; Adam keeps two moments beside them).
3. Rewind latency: a run of the big MLP trains until stopped; once it has a snapshot, Rewind(back=0) is sent and
   the time to the branch's RunStarted and to its first StepStats (the first steps of the branch reported: the
   flush is every 0.1 s) is measured from the command, as the app's key or `torchtui rewind` sends it.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from bench_engine import WORKLOADS  # noqa: E402 - the same MLPs and data as the engine's own bench

from torchtui.engine import protocol as p  # noqa: E402
from torchtui.engine.host import InProcessHost  # noqa: E402

TARGET = 0.98


def one_run(host: InProcessHost, config: dict, runs: str) -> tuple[float, float, object]:
    """Samples per second of one run (RunStarted -> RunFinished) in wall time and in this process's CPU time (all
    its threads: the engine's and the writer's; this one waits), and the session's snapshotter after it. CPU time
    is what the figure uses: on a shared machine wall time swings 5x between rounds, CPU time a few per cent."""
    seen: list = []
    host.send(p.Start(config=config, runs_dir=runs))
    started = host.wait_for(lambda e: isinstance(e, p.RunStarted), timeout=600, seen=seen)
    t0, c0 = time.perf_counter(), time.process_time()
    done = host.wait_for(lambda e: isinstance(e, p.RunFinished), timeout=1200, seen=seen)
    seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
    assert done.state == p.FINISHED, done.summary
    samples = started.total_steps * config["train"]["batch_size"]
    return samples / seconds, samples / cpu, host.engine.session.snapshots


EVERY = 0.0  # --every: train.snapshot_every of the "on" runs (0: the default, auto)


def variant(config: dict, snapshots: bool, guard: str) -> dict:
    return {**config, "train": {**config["train"], "snapshots": snapshots, "guard": guard,
                                "checkpoint_every": 10.0, "snapshot_every": EVERY}}


def overhead(name: str, make, rounds: int, quick: bool, runs: str) -> None:
    label, maker = WORKLOADS[name]
    base = maker(quick, 0)
    kinds = {"off": variant(base, False, "off"), "on": variant(base, True, "off"),
             "on+guard": variant(base, True, "rollback")}
    rates: dict[str, list[float]] = {k: [] for k in kinds}
    walls: dict[str, list[float]] = {k: [] for k in kinds}
    costs, sizes = [], []
    with InProcessHost() as host:
        for config in kinds.values():  # an untimed warm-up of each
            one_run(host, config, runs)
        for _ in range(rounds):
            for kind, config in kinds.items():
                wall, rate, snaps = one_run(host, config, runs)
                rates[kind].append(rate)
                walls[kind].append(wall)
                if snaps is not None and len(snaps.ring) > 1:  # a copy after steps (the first has no moments)
                    costs.append(snaps.cost)
                    sizes.append(snaps.ring.items[-1].nbytes)
    med = {k: statistics.median(v) for k, v in rates.items()}
    print(f"\n{name}: {label} ({rounds} rounds, median samples per CPU second; wall samples/s after |)")
    for kind in kinds:
        print(f"  snapshots {kind:<9} {med[kind]:>12,.0f}   " + " ".join(f"{v:,.0f}" for v in rates[kind])
              + "  |  " + " ".join(f"{v:,.0f}" for v in walls[kind]))
    for kind in ("on", "on+guard"):  # the median of each round's ratio: a round's runs share its noise
        ratio = statistics.median(a / b for a, b in zip(rates[kind], rates["off"]))
        print(f"  ratio {kind}/off {ratio:>10.3f}   target >= {TARGET}: {'PASS' if ratio >= TARGET else 'MISS'}")
    if costs:
        from torchtui.engine.run.snapshots import AUTO_COST_FACTOR, SNAPSHOT_AUTO_S

        cost = statistics.median(costs)
        interval = EVERY or max(SNAPSHOT_AUTO_S, AUTO_COST_FACTOR * cost)
        print(f"  one snapshot: {cost * 1e3:.2f} ms on the training thread, every {interval:.1f} s "
              f"({'--every' if EVERY else 'auto'}): "
              f"{cost / interval:.3%} of the time; {statistics.median(sizes) / 1e6:.3f} MB "
              f"(at the default, every {max(SNAPSHOT_AUTO_S, AUTO_COST_FACTOR * cost):.1f} s: "
              f"{cost / max(SNAPSHOT_AUTO_S, AUTO_COST_FACTOR * cost):.3%})")
    make[name] = (statistics.median(sizes) if sizes else 0)


def memory_per_param_mb(name: str, quick: bool, runs: str) -> None:
    """Bytes of a snapshot per MB of float32 parameters, from one short run."""
    _, maker = WORKLOADS[name]
    config = variant(maker(quick, 0), True, "off")
    config["train"].update(epochs=1, snapshot_every=0.2)  # a few snapshots after steps (the first has no moments)
    with InProcessHost() as host:
        host.send(p.Start(config=config, runs_dir=runs))
        host.wait_for(lambda e: isinstance(e, p.RunFinished), timeout=600)
        snaps = host.engine.session.snapshots
        model = host.engine.session.run
    snap = snaps.ring.items[-1]
    weights = sum(t.numel() * t.element_size() for t in snap.state["model"].values())
    print(f"  {name}: a snapshot at step {snap.step} is {snap.nbytes / 1e6:.3f} MB for {weights / 1e6:.3f} MB of "
          f"weights and buffers = {snap.nbytes / weights:.2f} MB per MB (Adam: weights + 2 moments); "
          f"the ring holds {len(snaps.ring)} within {snaps.ring.budget / 1e6:,.0f} MB (auto)")
    del model


def rewind_latency(rounds: int, runs: str) -> None:
    _, maker = WORKLOADS["big"]
    config = variant(maker(True, 0), True, "off")
    config["train"]["epochs"] = 0  # until stopped
    to_start, to_step = [], []
    with InProcessHost() as host:
        host.send(p.Start(config=config, runs_dir=runs))
        host.wait_for(lambda e: isinstance(e, p.RunStarted), timeout=600)
        for _ in range(rounds):
            host.wait_for(lambda e: isinstance(e, p.StepStats), timeout=60)
            t0 = time.perf_counter()
            host.send(p.Rewind(back=0))
            branch = host.wait_for(lambda e: isinstance(e, p.Branched), timeout=60).branch_id
            host.wait_for(lambda e, b=branch: isinstance(e, p.RunStarted) and e.run_id == b, timeout=60)
            to_start.append(time.perf_counter() - t0)
            host.wait_for(lambda e, b=branch: isinstance(e, p.StepStats) and e.run_id == b and e.step, timeout=60)
            to_step.append(time.perf_counter() - t0)
        host.send(p.Stop())
        host.wait_for(lambda e: isinstance(e, p.RunFinished) and e.run_id == branch, timeout=60)
    first = statistics.median(to_step) * 1e3
    print(f"\nrewind latency, big MLP ({rounds} rewinds, median): command -> branch's RunStarted "
          f"{statistics.median(to_start) * 1e3:.0f} ms, -> its first StepStats {first:.0f} ms"
          f"  ({', '.join(f'{v * 1e3:.0f}' for v in to_step)})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="bench_engine's --quick sizes (8x fewer samples)")
    parser.add_argument("--only", choices=["small", "big"], action="append")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--every", type=float, default=0.0,
                        help="train.snapshot_every of the 'on' runs (default 0: auto, every 2 s); e.g. 0.2 takes "
                             "10x as many as the default, so short --quick runs show the cost (÷10 for the default)")
    args = parser.parse_args()
    global EVERY
    EVERY = args.every
    torch.set_num_threads(args.threads)
    names = args.only or ["small", "big"]
    with tempfile.TemporaryDirectory(prefix="bench-snapshots-") as runs:
        sizes: dict = {}
        for name in names:
            overhead(name, sizes, args.rounds, args.quick, runs)
        print("\nsnapshot memory")
        for name in names:
            memory_per_param_mb(name, args.quick, runs)
        rewind_latency(args.rounds, runs)


if __name__ == "__main__":
    main()
