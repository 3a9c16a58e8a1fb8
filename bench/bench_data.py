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
print(seconds, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, len(frame))
"""

ENGINE = """
import resource, sys, time
from torchtui.engine import protocol as p
from torchtui.engine.host import InProcessHost
config = {"name": "bench-data", "data": {"source": "csv",
          "path": sys.argv[1], "target": "y", "val_fraction": 0.1, "test_fraction": 0.0},
          "model": {"layers": [64]}, "train": {"epochs": 1, "batch_size": 1024, "lr": 0.01},
          "device": {"device": "cpu"}}
host = InProcessHost(sys.argv[2])
t = time.perf_counter()
host.send(p.Start(config=config))
first = host.wait_for(lambda e: isinstance(e, p.StepStats) or (isinstance(e, p.StateChanged) and e.state == p.FAILED),
                      timeout=1800)
seconds = time.perf_counter() - t
host.send(p.Stop())
print(seconds if isinstance(first, p.StepStats) else -1, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
      getattr(first, 'reason', ''))
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


def child(code: str, *args: str) -> tuple[float, float, str]:
    done = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, cwd=ROOT)
    if done.returncode != 0:
        return -1.0, -1.0, done.stderr.strip().splitlines()[-1] if done.stderr.strip() else "failed"
    seconds, rss, *rest = done.stdout.split()
    return float(seconds), float(rss), " ".join(rest)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=5_000_000)
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--only", choices=["csv", "parquet"], default="csv")
    ap.add_argument("--folder", default=str(Path(tempfile.gettempdir()) / "torchtui-bench-data"))
    args = ap.parse_args()
    folder = Path(args.folder)
    folder.mkdir(parents=True, exist_ok=True)
    t = time.perf_counter()
    path = generate(folder, args.rows)
    if args.only == "parquet":
        path = parquet_of(path)
    print(f"{path.name}: {path.stat().st_size / 2**20:,.0f} MiB, {args.rows:,} rows x 12 columns "
          f"(ready in {time.perf_counter() - t:.1f} s)")
    pandas, ours = [], []
    for r in range(args.rounds):
        a = child(PANDAS, str(path))
        b = child(ENGINE, str(path), str(folder / "runs"))
        print(f"round {r + 1}: pandas {a[0]:.2f} s {a[1]:,.0f} MiB | torchtui to first step {b[0]:.2f} s "
              f"{b[1]:,.0f} MiB {b[2]}")
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
