"""Training throughput: textbook DataLoader loop (a), bare index-sliced loop (b), the engine in-process with
every statistic on (c), and the engine in its worker process with a client draining events (d).

    python bench/bench_engine.py [--rounds 3] [--quick] [--only small|big]

Methods alternate within each round, so machine noise hits all of them; each figure is a median.
The small MLP runs with 1 torch thread everywhere: it is this model's fastest setting on 2 cores, and
with 2 threads a and b (on this main thread) and c (on the engine thread) would each keep an OpenMP
pool that fight over the cores (measured here: the same bare loop ran 68k samples/s on a second
thread vs 86k on the main one with 2 threads, 90k on either with 1) — a contention the real headless
CLI does not have, since its main thread does no torch work.
Throughput is train samples / wall time of the whole run. For c and d that includes what a real run
pays: per-step statistics, a (small, 5 %) validation and last/best checkpoints every epoch.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from torchtui.engine import protocol as p
from torchtui.engine.config import from_dict
from torchtui.engine.data import load_data
from torchtui.engine.host import InProcessHost, WorkerHost

WORKLOADS = {
    "small": {"data": {"source": "moons", "n_samples": 16000, "noise": 0.2}, "layers": [64, 64], "epochs": 4,
              "threads": 1},
    "big": {"data": {"source": "blobs", "features": 784, "classes": 10, "n_samples": 4000}, "layers": [512, 512],
            "epochs": 2, "threads": None},
}


def config(work: dict, epochs: int) -> dict:
    return {"name": "bench", "data": {**work["data"], "val_fraction": 0.05, "test_fraction": 0.0},
            "model": {"layers": work["layers"]},
            "train": {"loss": "cross_entropy", "optimizer": "adam", "lr": 1e-3, "batch_size": 64, "epochs": epochs},
            "device": {"device": "cpu"}}


def make_model(n_in: int, layers: list[int], n_out: int) -> nn.Module:
    mods, width = [], n_in
    for units in layers:
        mods += [nn.Linear(width, units), nn.ReLU()]
        width = units
    return nn.Sequential(*mods, nn.Linear(width, n_out))


def textbook(x, y, layers, n_out, epochs) -> float:
    """(a) DataLoader(TensorDataset, shuffle=True), the tutorial's loop."""
    model = make_model(x.shape[1], layers, n_out)
    opt, loss_fn = torch.optim.Adam(model.parameters(), lr=1e-3), nn.CrossEntropyLoss()
    loader = DataLoader(TensorDataset(x, y), batch_size=64, shuffle=True)
    start = time.perf_counter()
    for _ in range(epochs):
        for xb, yb in loader:
            loss = loss_fn(model(xb), yb)
            opt.zero_grad()
            loss.backward()
            opt.step()
    return len(x) * epochs / (time.perf_counter() - start)


def bare(x, y, layers, n_out, epochs) -> float:
    """(b) per-epoch randperm and index slicing, nothing else."""
    model = make_model(x.shape[1], layers, n_out)
    opt, loss_fn = torch.optim.Adam(model.parameters(), lr=1e-3), nn.CrossEntropyLoss()
    start = time.perf_counter()
    for _ in range(epochs):
        perm = torch.randperm(len(x))
        for i in range(0, len(x), 64):
            idx = perm[i:i + 64]
            loss = loss_fn(model(x[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    return len(x) * epochs / (time.perf_counter() - start)


def engine(host, cfg: dict, n_train: int) -> float:
    """(c)/(d): the whole run, from RunStarted to RunFinished as the client sees them."""
    host.send(p.Start(config=cfg))
    host.wait_for(lambda e: isinstance(e, p.RunStarted), timeout=600)
    start = time.perf_counter()
    done = host.wait_for(lambda e: isinstance(e, p.RunFinished), timeout=600)
    seconds = time.perf_counter() - start
    assert done.state == p.FINISHED, done.summary
    return n_train * cfg["train"]["epochs"] / seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="one short round (smoke test)")
    parser.add_argument("--only", choices=sorted(WORKLOADS))
    args = parser.parse_args()
    rounds = 1 if args.quick else args.rounds
    default_threads = torch.get_num_threads()
    import tempfile

    runs = tempfile.mkdtemp(prefix="torchtui-bench-")
    results: dict[str, dict[str, float]] = {}
    for name, work in WORKLOADS.items():
        if args.only and name != args.only:
            continue
        threads = work["threads"] or default_threads
        torch.set_num_threads(threads)
        print(f"{name}: torch {torch.__version__}, {threads} torch thread(s) here and in the worker", flush=True)
        local, worker = InProcessHost(runs), WorkerHost(runs, threads=threads)
        try:
            worker.wait_for(lambda e: isinstance(e, p.EngineReady), timeout=120)
            epochs = 1 if args.quick else work["epochs"]
            cfg = config(work, epochs)
            splits = load_data(from_dict(cfg).data)
            x, y, n_out = splits.x_train, splits.y_train, splits.n_classes
            runs_of = {k: [] for k in "abcd"}
            for _ in range(rounds):
                runs_of["a"].append(textbook(x, y, work["layers"], n_out, epochs))
                runs_of["b"].append(bare(x, y, work["layers"], n_out, epochs))
                runs_of["c"].append(engine(local, cfg, len(x)))
                runs_of["d"].append(engine(worker, cfg, len(x)))
            results[name] = {k: statistics.median(v) for k, v in runs_of.items()}
        finally:
            local.close()
            worker.close()
    report(results)


def report(results: dict) -> None:
    names = {"a": "a textbook DataLoader loop", "b": "b bare index-sliced loop", "c": "c engine, in-process, all stats",
             "d": "d engine in worker process"}
    print(f"\n{'samples/s':<34}" + "".join(f"{w:>12}" for w in results))
    for k, label in names.items():
        print(f"{label:<34}" + "".join(f"{results[w][k]:>12,.0f}" for w in results))
    targets = {"c/b": 0.95, "c/a": 1.5, "d/c": 0.95}
    print(f"\n{'ratio (target, small MLP)':<34}" + "".join(f"{w:>12}" for w in results))
    for ratio, target in targets.items():
        top, bottom = ratio.split("/")
        values = "".join(f"{results[w][top] / results[w][bottom]:>12.2f}" for w in results)
        verdict = ""
        if "small" in results:
            verdict = "PASS" if results["small"][top] / results["small"][bottom] >= target else "MISS"
        print(f"{ratio + f' (>= {target})':<34}{values}   {verdict}")


if __name__ == "__main__":
    main()
