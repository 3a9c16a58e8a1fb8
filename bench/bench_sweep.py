"""What a sweep adds per trial: a sweep of N tiny trials vs N separate `torchtui train` runs of the same setups.

    python bench/bench_sweep.py [--trials 10] [--epochs 3]

Both sides train the same moons MLP (300 samples, --epochs) at the learning rates the sweep's random
sampler picks (read back from its result), on 1 CPU thread, timed wall-clock from launch to exit in the
same run. The sweep keeps one engine worker for all its trials (torch imported once) and records every
trial in Optuna's SQLite storage; the train runs each start a Python process and import torch.
Prints seconds per trial for each and their ratio; not a test, always exits 0.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

CLI = [sys.executable, "-m", "torchtui.cli"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=10)
    parser.add_argument("--epochs", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        base = {"name": "bench", "data": {"source": "moons", "n_samples": 300},
                "model": {"layers": [16, 16]},
                "train": {"loss": "cross_entropy", "lr": 0.01, "epochs": args.epochs, "best_metric": "accuracy"},
                "device": {"device": "cpu", "threads": 1}}
        preset = tmp / "bench.yaml"
        preset.write_text(yaml.safe_dump({**base, "sweep": {
            "method": "random", "metric": "accuracy", "trials": args.trials,
            "params": {"train.lr": {"log_uniform": [1e-3, 1e-1]}}}}))
        start = time.perf_counter()
        done = subprocess.run([*CLI, "sweep", str(preset), "--runs-dir", str(tmp / "sweep"), "--json"],
                              capture_output=True, text=True)
        swept = time.perf_counter() - start
        if done.returncode != 0:
            print(done.stderr[-2000:])
            return
        lrs = [t["params"]["train.lr"] for t in json.loads(done.stdout.splitlines()[-1])["trials"]]
        plain = tmp / "plain.yaml"
        plain.write_text(yaml.safe_dump(base))
        start = time.perf_counter()
        for lr in lrs:
            subprocess.run([*CLI, "train", str(plain), "--runs-dir", str(tmp / "train"), "--set", f"train.lr={lr}"],
                           capture_output=True, check=True)
        trained = time.perf_counter() - start
    n = len(lrs)
    print(f"{n} trials, {args.epochs} epochs each")
    print(f"torchtui sweep:                {swept:6.1f} s  ({swept / n:.2f} s per trial)")
    print(f"{n} x torchtui train:          {trained:6.1f} s  ({trained / n:.2f} s per run)")
    print(f"sweep / train per trial:       {swept / trained:.2f}")


if __name__ == "__main__":
    main()
