"""Training throughput of the same MLPs four ways, measured alternately in one process.

    python bench/bench_engine.py [--rounds 3] [--quick] [--only small|big|preset] [--threads N]
        [--stats-every N] [--keep-runs] [--compile]

(a) the textbook loop: DataLoader(TensorDataset, shuffle=True);
(b) a bare loop: a randperm per epoch and index-sliced tensors, nothing else;
(c) the engine headless in this process (InProcessHost), every statistic on: StepStats and metrics.jsonl
    rows for every step, per-layer norms and update ratios every `stats_every` steps (default auto: ~10 a
    second, as presets have it), a val evaluation
    with predictions each epoch, best.pt on improvement and last.pt, as any run does;
(d) the engine in its spawn worker (WorkerHost), this process draining its events over the pipe.

All four train the same nn.Sequential of Linear/ReLU with Adam and cross-entropy, batch 64, on the
same train tensors (from torchtui.engine.data.splits.load_data), for the same number of samples. a and b time
their epochs only (no evaluation). c and d time RunStarted -> RunFinished as this client receives
them: everything the engine does once the run is set up. In `small` and `big` the val split is 5 % and
there is no test split, so evaluation is a small part of that; `preset` is the moons preset as shipped
(30 short epochs, 20 % val, 10 % test), where per-epoch work is not small. Each round runs a, b, c, d
in turn, so machine noise hits all four; a figure is the median over rounds, after one untimed
warm-up of each.

`--compile`: all four with torch.compile (a and b compile their model, c and d set device.compile), the
path gpu_check.py measures on a GPU, here on the CPU (inductor's C++ backend); it also prints what Dynamo
counted in this process (c's runs): graph breaks, graphs compiled and recompiles.

Threads: this process and the worker use the same torch thread count (`--threads`, default 1, which
is WorkerHost's own default on 2 cores). On a 2-core machine shared with other jobs, 2 OpenMP threads
collapse whenever anything else runs (measured here, the bare loop on the small MLP: 82-90k samples/s
with 1 thread, 3-85k with 2 while other jobs came and went; 2 threads were never faster).
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import time

import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from torchtui.engine import presets
from torchtui.engine import protocol as p
from torchtui.engine.config import from_dict
from torchtui.engine.data.splits import load_data
from torchtui.engine.host import InProcessHost, WorkerHost

BATCH = 64
TARGETS = {"c/b": 0.95, "c/a": 1.5, "d/c": 0.95}  # for the small MLP
METHODS = {"a": "a  DataLoader(TensorDataset)", "b": "b  bare index-sliced loop",
           "c": "c  engine in-process, all stats", "d": "d  engine in worker, client drains"}
QUICK = 8  # --quick: this many times fewer samples (small, big) or epochs (preset)


def synthetic(data: dict, layers: list[int], epochs: int):
    def make(quick: bool, stats_every: int) -> dict:
        n = data["n_samples"] // (QUICK if quick else 1)
        return {"name": "bench", "data": {**data, "n_samples": n, "val_fraction": 0.05, "test_fraction": 0.0},
                "model": {"layers": layers},
                "train": {"loss": "cross_entropy", "optimizer": "adam", "lr": 1e-3, "batch_size": BATCH,
                          "epochs": epochs, "stats_every": stats_every},
                "device": {"device": "cpu"}}
    return make


def moons_preset(quick: bool, stats_every: int) -> dict:
    cfg = presets.load("moons").to_dict()
    cfg["device"]["device"] = "cpu"
    cfg["train"]["stats_every"] = stats_every
    if quick:
        cfg["train"]["epochs"] = max(1, cfg["train"]["epochs"] // QUICK)
    return cfg


WORKLOADS = {  # sized for a few seconds per method per round on 2 cores
    "small": ("moons 2-64-64-2", synthetic({"source": "moons", "n_samples": 40000, "noise": 0.2}, [64, 64], 6)),
    "big": ("blobs 784-512-512-10",
            synthetic({"source": "blobs", "features": 784, "classes": 10, "n_samples": 16000}, [512, 512], 2)),
    "preset": ("the moons preset as shipped", moons_preset),
}


COMPILE = False  # --compile: a and b compile their models too


def make_model(n_in: int, layers: list, n_out: int) -> nn.Module:
    mods, width = [], n_in
    for units in layers:
        units = units["units"] if isinstance(units, dict) else units
        mods += [nn.Linear(width, units), nn.ReLU()]
        width = units
    model = nn.Sequential(*mods, nn.Linear(width, n_out))
    return torch.compile(model) if COMPILE else model


def textbook(x, y, layers, n_out, epochs, lr) -> float:
    """(a) DataLoader(TensorDataset, shuffle=True), the tutorial's loop; samples/s."""
    model = make_model(x.shape[1], layers, n_out)
    opt, loss_fn = torch.optim.Adam(model.parameters(), lr=lr), nn.CrossEntropyLoss()
    loader = DataLoader(TensorDataset(x, y), batch_size=BATCH, shuffle=True)
    start = time.perf_counter()
    for _ in range(epochs):
        for xb, yb in loader:
            loss = loss_fn(model(xb), yb)
            opt.zero_grad()
            loss.backward()
            opt.step()
    return len(x) * epochs / (time.perf_counter() - start)


def bare(x, y, layers, n_out, epochs, lr) -> float:
    """(b) a randperm per epoch and index slicing, nothing else; samples/s."""
    model = make_model(x.shape[1], layers, n_out)
    opt, loss_fn = torch.optim.Adam(model.parameters(), lr=lr), nn.CrossEntropyLoss()
    start = time.perf_counter()
    for _ in range(epochs):
        perm = torch.randperm(len(x))
        for i in range(0, len(x), BATCH):
            idx = perm[i:i + BATCH]
            loss = loss_fn(model(x[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    return len(x) * epochs / (time.perf_counter() - start)


def engine(host, cfg: dict, n_train: int) -> float:
    """(c)/(d): train samples / seconds from RunStarted to RunFinished, as this client receives them."""
    host.send(p.Start(config=cfg))
    started = host.wait_for(lambda e: isinstance(e, p.RunStarted) or _failed(e), timeout=600)
    if not isinstance(started, p.RunStarted):
        raise RuntimeError(f"the engine did not start the run: {started}")
    begin = time.perf_counter()
    seen: list = []
    done = host.wait_for(lambda e: isinstance(e, p.RunFinished), timeout=600, seen=seen)
    seconds = time.perf_counter() - begin
    steps = sum(len(e.step) for e in seen if isinstance(e, p.StepStats) and e.run_id == started.run_id)
    if done.state != p.FINISHED or steps != started.total_steps:
        raise RuntimeError(f"run ended {done.state} after {steps}/{started.total_steps} steps: {done.summary}")
    return n_train * cfg["train"]["epochs"] / seconds


def _failed(event) -> bool:
    return isinstance(event, p.StateChanged) and event.state == p.FAILED


def measure(name: str, hosts: dict, args) -> dict[str, list[float]]:
    label, make = WORKLOADS[name]
    cfg = make(args.quick, args.stats_every)
    if args.eval_budget is not None:
        cfg["train"]["eval_budget"] = args.eval_budget
    if COMPILE:
        cfg["device"]["compile"] = True
    splits = load_data(from_dict(cfg).data)
    x, y, n_out = splits.x_train, splits.y_train, splits.n_classes
    layers, epochs, lr = cfg["model"]["layers"], cfg["train"]["epochs"], cfg["train"]["lr"]
    print(f"\n{name}: {label}, {len(x):,} train samples x {epochs} epochs, batch {BATCH}; "
          f"engine also evaluates {len(splits.x_val):,} val (per epoch) and {len(splits.x_test):,} test", flush=True)
    methods = {"a": lambda: textbook(x, y, layers, n_out, epochs, lr),
               "b": lambda: bare(x, y, layers, n_out, epochs, lr),
               "c": lambda: engine(hosts["c"], cfg, len(x)), "d": lambda: engine(hosts["d"], cfg, len(x))}
    warm = {**cfg, "train": {**cfg["train"], "epochs": 1}}
    textbook(x, y, layers, n_out, 1, lr), bare(x, y, layers, n_out, 1, lr)
    for host in hosts.values():
        engine(host, warm, len(x))
    results: dict[str, list[float]] = {m: [] for m in methods}
    for r in range(args.rounds):
        for m, run in methods.items():
            results[m].append(run())
        print(f"  round {r + 1}: " + "  ".join(f"{m} {v[-1]:>9,.0f}" for m, v in results.items()), flush=True)
    return results


def report(results: dict[str, dict[str, list[float]]], threads: int, stats_every: int) -> None:
    medians = {name: {m: statistics.median(v) for m, v in by_method.items()} for name, by_method in results.items()}
    names = list(medians)
    print(f"\nsamples/s, median of rounds; {threads} torch thread(s); a, b: training epochs only; c, d: RunStarted "
          f"-> RunFinished (all stats, layer stats {f'every {stats_every} steps' if stats_every else '~10/s (auto)'}, "
          "evaluations, checkpoints)")
    print(f"{'method':<36}" + "".join(f"{n:>12}" for n in names))
    for m, label in METHODS.items():
        print(f"{label:<36}" + "".join(f"{medians[n][m]:>12,.0f}" for n in names))
    print(f"\n{'ratio (of the medians)':<36}" + "".join(f"{n:>12}" for n in names) + "   target (small)")
    for ratio, target in TARGETS.items():
        top, bottom = ratio.split("/")
        values = {n: medians[n][top] / medians[n][bottom] for n in names}
        # Each round measures a, b, c, d back to back: a round's ratio sees the same machine weather on both
        # sides, so its median is steadier here than the ratio of the medians (both printed).
        paired = {n: statistics.median(t / b for t, b in zip(results[n][top], results[n][bottom])) for n in names}
        verdict = ("PASS" if paired["small"] >= target else "MISS") if "small" in paired else ""
        print(f"{ratio:<36}" + "".join(f"{v:>12.2f}" for v in values.values()))
        print(f"{'  median of per-round ' + ratio:<36}" + "".join(f"{v:>12.2f}" for v in paired.values())
              + f"   >= {target:<5} {verdict}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3, help="rounds of a, b, c, d (default 3)")
    parser.add_argument("--quick", action="store_true", help=f"{QUICK}x less work, one round (smoke test)")
    parser.add_argument("--only", choices=list(WORKLOADS), help="run one workload")
    parser.add_argument("--threads", type=int, default=1, help="torch threads here and in the worker (default 1)")
    parser.add_argument("--stats-every", type=int, default=0,
                        help="the engine's train.stats_every (default 0: auto, as presets have it)")
    parser.add_argument("--eval-budget", type=float, default=None,
                        help="the engine's train.eval_budget (default: the config's, 0.05; 0 = every epoch evaluated)")
    parser.add_argument("--keep-runs", action="store_true", help="keep the engine's run folders (deleted by default)")
    parser.add_argument("--compile", action="store_true", help="every method with torch.compile (see above)")
    args = parser.parse_args()
    global COMPILE
    COMPILE = args.compile
    if args.quick:
        args.rounds = 1
    torch.set_num_threads(args.threads)
    threads = torch.get_num_threads()
    print(f"torch {torch.__version__}, {threads} torch thread(s) in this process and in the worker")
    runs = tempfile.mkdtemp(prefix="torchtui-bench-")
    hosts = {"c": InProcessHost(runs), "d": WorkerHost(runs, threads=threads)}
    results: dict[str, dict[str, list[float]]] = {}
    try:
        for host in hosts.values():
            host.wait_for(lambda e: isinstance(e, p.EngineReady), timeout=120)
        for name in WORKLOADS:
            if args.only in (None, name):
                results[name] = measure(name, hosts, args)
    finally:
        for host in hosts.values():
            host.close()
        if not args.keep_runs:  # checkpoints of the big MLP come to ~100 MB a run of the script
            shutil.rmtree(runs, ignore_errors=True)
    report(results, threads, args.stats_every)
    if args.compile:
        from torch._dynamo.utils import counters

        breaks = sum(counters["graph_break"].values())
        print(f"\nDynamo in this process (a, b and c): {breaks} graph break(s) "
              f"{dict(counters['graph_break']) if breaks else ''}, {counters['stats']['unique_graphs']} graph(s) "
              f"compiled, {sum(counters['recompiles'].values())} recompile(s)")
    if args.keep_runs:
        print(f"(run folders under {runs})")


if __name__ == "__main__":
    main()
