"""Data at the size people have it: a big CSV to the first training step vs pandas.read_csv, timed in the same run.

    python bench/bench_data.py [--rows 5000000] [--rounds 1] [--only csv|parquet] [--folder DIR]

Generates a CSV of ROWS rows × 12 numeric columns (11 features of seven decimals and an integer class label:
5M rows ≈ 590 MB; kept in DIR, by default the temp folder, for the next run), then alternates in fresh processes:
  (a) pandas.read_csv of the file (the reference: time of the call, peak RSS of the process);
  (b) torchtui: the engine in-process on a preset reading that file, from Start to its first StepStats
      (reading, checking every cell, splitting, encoding, building the model, the first steps), peak RSS;
and prints each median and the ratios b/a (targets: time <= 3, peak RSS <= 1.5). With --only parquet, the
same table as a Parquet file read by torchtui, against pandas.read_parquet. Always exits 0.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

PANDAS = """
import resource, sys, time
import pandas as pd
t = time.perf_counter()
frame = (pd.read_parquet if sys.argv[1].endswith('.parquet') else pd.read_csv)(sys.argv[1])
seconds = time.perf_counter() - t
print(seconds, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 0, 0)
"""

ENGINE = """
import json, resource, sys, time
from torchtui.engine import protocol as p
from torchtui.engine.host import InProcessHost
data, steps = json.loads(sys.argv[1]), int(sys.argv[3])
config = {"name": "bench-data", "data": {"val_fraction": 0.1, "test_fraction": 0.0, **data},
          "model": {"layers": [64]}, "train": {"epochs": 0 if steps else 1, "batch_size": 1024, "lr": 0.01},
          "device": {"device": "cpu"}}
host = InProcessHost(sys.argv[2])
t = time.perf_counter()
host.send(p.Start(config=config))
failed = lambda e: isinstance(e, p.StateChanged) and e.state == p.FAILED
first = host.wait_for(lambda e: isinstance(e, p.StepStats) or failed(e), timeout=1800)
seconds, waits, last = time.perf_counter() - t, [], first
while isinstance(last, p.StepStats) and last.step[-1] < steps:
    waits.append(last.data_wait)
    last = host.wait_for(lambda e: isinstance(e, p.StepStats) or failed(e), timeout=600)
spent = time.perf_counter() - t - seconds
host.send(p.Stop())
wait = [w for w in waits if w is not None]
print(seconds if isinstance(first, p.StepStats) else -1, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
      (last.step[-1] - first.step[-1]) / spent if steps and isinstance(last, p.StepStats) and spent > 0 else 0,
      sum(wait) / len(wait) if wait else -1, getattr(first, 'reason', ''))
host.close()
"""


def generate(folder: Path, rows: int) -> Path:
    path = folder / f"table-{rows}.csv"
    if path.exists():
        return path
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.csv as pacsv

    rng = np.random.default_rng(0)
    x = rng.standard_normal((rows, 11)) * 10
    label = (x[:, 0] + x[:, 1] > 0).astype(np.int64) + 2 * (x[:, 2] > 0)  # four classes a model can learn
    table = pa.table({**{f"x{j}": pc.round(pa.array(x[:, j]), 7) for j in range(11)}, "y": pa.array(label)})
    pacsv.write_csv(table, str(path) + ".part", pacsv.WriteOptions(quoting_style="none"))
    Path(str(path) + ".part").rename(path)
    return path


def parquet_of(csv_path: Path) -> Path:
    path = csv_path.with_suffix(".parquet")
    if not path.exists():
        import pyarrow.csv as pacsv
        import pyarrow.parquet as pq

        pq.write_table(pacsv.read_csv(csv_path), path)
    return path


def generate_npy(folder: Path, gib: float) -> Path:
    """A folder of X.npy (float32 rows of 256 features, GIB gibibytes) and y.npy, written a block at a time."""
    path = folder / f"arrays-{gib:g}gib"
    if (path / "y.npy").exists():
        return path
    import numpy as np

    path.mkdir(parents=True, exist_ok=True)
    rows = int(gib * 2**30) // (256 * 4)
    x = np.lib.format.open_memmap(path / "X.npy", mode="w+", dtype=np.float32, shape=(rows, 256))
    rng = np.random.default_rng(0)
    y = np.empty(rows, np.int64)
    for start in range(0, rows, 1 << 16):
        block = rng.standard_normal((min(1 << 16, rows - start), 256), dtype=np.float32)
        x[start:start + len(block)] = block
        y[start:start + len(block)] = (block[:, 0] + block[:, 1] > 0) + 2 * (block[:, 2] > 0)
    x.flush()
    del x
    np.save(path / "y.npy", y)
    return path


def child(code: str, *args: str) -> tuple[float, ...]:
    done = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, cwd=ROOT)
    if done.returncode != 0:
        print("  failed:", done.stderr.strip().splitlines()[-1] if done.stderr.strip() else done.returncode)
        return (-1.0, -1.0, 0.0, -1.0)
    return tuple(float(v) for v in done.stdout.split()[:4])


def npy_rows(folder: Path, gib: float, steps: int, workers: int) -> None:
    """Train on a folder of .npy files, streamed (data.stream: true; a folder past the memory budget streams
    anyway): read by position a batch at a time."""
    path = generate_npy(folder, gib)
    size = sum(f.stat().st_size for f in path.iterdir()) / 2**30
    print(f"{path.name}: {size:.2f} GiB of .npy; {steps} steps of 1,024 rows, data.workers {workers}")
    data = json.dumps({"source": "tensors", "path": str(path), "workers": workers, "stream": True})
    first, rss, rate, wait = child(ENGINE, data, str(folder / "runs"), str(steps))
    print(f"first step {first:.2f} s, {rate:,.1f} steps/s after it, mean data wait {wait:.0%}, peak RSS {rss:,.0f} MiB")
    print(f"peak RSS {rss:,.0f} MiB for {size:.2f} GiB of data (target < 1,024 MiB) "
          f"{'PASS' if 0 < rss < 1024 else 'MISS'}")


PLAIN_IMAGES = """
import sys, time, torch
import torchvision as tv
root, workers, rounds = sys.argv[1], int(sys.argv[2]), 2
torch.manual_seed(0)
data = tv.datasets.ImageFolder(root, transform=tv.transforms.ToTensor())  # PIL decoding, as most loops do
loader = torch.utils.data.DataLoader(data, batch_size=256, shuffle=True, num_workers=workers,
                                     persistent_workers=workers > 0)
nn = torch.nn
model = nn.Sequential(nn.Flatten(), nn.Linear(3 * 32 * 32, 64), nn.ReLU(), nn.Linear(64, 10))
opt = torch.optim.Adam(model.parameters(), 1e-3)
rates = []
for _ in range(rounds):
    seen, start = 0, None
    for i, (x, y) in enumerate(loader):
        if i == 1:
            start, seen = time.perf_counter(), 0  # from the second batch: workers started
        loss = torch.nn.functional.cross_entropy(model(x), y)
        opt.zero_grad(); loss.backward(); opt.step()
        seen += len(y)
    rates.append(seen / (time.perf_counter() - start))
print(max(rates))
"""

ENGINE_IMAGES = """
import json, statistics, sys, time
from torchtui.engine import protocol as p
from torchtui.engine.host import InProcessHost
root, workers = sys.argv[1], int(sys.argv[2])
config = {"name": "bench-images", "data": {"source": "torchvision", "dataset": "ImageFolder", "path": root,
          "stream": True, "workers": workers, "val_fraction": 0.1},
          "model": {"layers": [64]}, "train": {"epochs": 2, "batch_size": 256, "lr": 0.001, "eval_every": 0},
          "device": {"device": "cpu"}}
host = InProcessHost(sys.argv[3])
host.send(p.Start(config=config))
stats = []
while True:
    e = host.wait_for(lambda e: isinstance(e, (p.StepStats, p.RunFinished)) or (isinstance(e, p.StateChanged)
                      and e.state == p.FAILED), timeout=900)
    if not isinstance(e, p.StepStats):
        break
    stats.append(e)
host.close()
steady = stats[len(stats) // 4:]  # past the workers' start
print(statistics.median(e.samples_per_s for e in steady), statistics.mean(e.data_wait for e in steady))
"""


def images(folder: Path, count: int, workers: int) -> None:
    """ImageFolder of COUNT 32x32 PNGs streamed by the engine vs a plain DataLoader loop, the same workers."""
    root = folder / f"images-{count}"
    if not (root / "9").is_dir():
        import numpy as np
        from PIL import Image

        rng = np.random.default_rng(0)
        for k in range(count):
            label = k % 10
            (root / str(label)).mkdir(parents=True, exist_ok=True)
            pixels = (rng.random((32, 32, 3)) * 64 + label * 19).astype(np.uint8)
            Image.fromarray(pixels).save(root / str(label) / f"{k:06d}.png")
    print(f"{root.name}: {count:,} PNGs of 32x32, data.workers {workers}, batch 256, the same MLP")
    plain = child(PLAIN_IMAGES, str(root), str(workers))[0]
    done = subprocess.run([sys.executable, "-c", ENGINE_IMAGES, str(root), str(workers), str(folder / "runs")],
                          capture_output=True, text=True, cwd=ROOT)
    ours, wait = (float(v) for v in done.stdout.split()[:2]) if done.returncode == 0 else (-1.0, -1.0)
    if done.returncode != 0:
        print("  failed:", done.stderr.strip().splitlines()[-1:])
    print(f"plain DataLoader loop {plain:,.0f} samples/s | torchtui streamed {ours:,.0f} samples/s, data wait "
          f"{wait:.0%}")
    print(f"torchtui / plain: {ours / plain:.2f} (target >= 0.9) {'PASS' if ours >= 0.9 * plain else 'MISS'}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=5_000_000)
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--only", choices=["csv", "parquet", "npy", "images"], default="csv")
    ap.add_argument("--count", type=int, default=20_000, help="--only images: the images")
    ap.add_argument("--gib", type=float, default=2.0, help="--only npy: the size of X.npy")
    ap.add_argument("--steps", type=int, default=2000, help="--only npy: steps to train")
    ap.add_argument("--workers", type=int, default=2, help="--only npy/images: data.workers")
    ap.add_argument("--folder", default=str(Path(tempfile.gettempdir()) / "torchtui-bench-data"))
    args = ap.parse_args()
    folder = Path(args.folder)
    folder.mkdir(parents=True, exist_ok=True)
    if args.only == "npy":
        npy_rows(folder, args.gib, args.steps, args.workers)
        return 0
    if args.only == "images":  # needs torchvision (and its Pillow)
        images(folder, args.count, args.workers)
        return 0
    t = time.perf_counter()
    path = generate(folder, args.rows)
    if args.only == "parquet":
        path = parquet_of(path)
    print(f"{path.name}: {path.stat().st_size / 2**20:,.0f} MiB, {args.rows:,} rows x 12 columns "
          f"(ready in {time.perf_counter() - t:.1f} s)")
    pandas, ours = [], []
    data = json.dumps({"source": "csv", "path": str(path), "target": "y"})
    for r in range(args.rounds):
        a = child(PANDAS, str(path))
        b = child(ENGINE, data, str(folder / "runs"), "0")
        print(f"round {r + 1}: pandas {a[0]:.2f} s {a[1]:,.0f} MiB | torchtui to first step {b[0]:.2f} s "
              f"{b[1]:,.0f} MiB")
        pandas.append(a)
        ours.append(b)
    med = [statistics.median(v[i] for v in pandas) for i in (0, 1)]
    mine = [statistics.median(v[i] for v in ours) for i in (0, 1)]
    ratio_t, ratio_m = mine[0] / med[0], mine[1] / med[1]
    print(json.dumps({"pandas_s": round(med[0], 2), "pandas_mib": round(med[1]), "torchtui_s": round(mine[0], 2),
                      "torchtui_mib": round(mine[1]), "time_ratio": round(ratio_t, 2),
                      "rss_ratio": round(ratio_m, 2)}))
    print(f"time to first step / pandas read: {ratio_t:.2f} (target <= 3)  {'PASS' if ratio_t <= 3 else 'MISS'}")
    print(f"peak RSS / pandas:                {ratio_m:.2f} (target <= 1.5) {'PASS' if ratio_m <= 1.5 else 'MISS'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
