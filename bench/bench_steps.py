"""Instructions per training step: the engine (a whole run, every statistic on) vs the bare loop, counted by
valgrind's callgrind. Counts do not drift with the machine's load, so they show the 1-2 % that wall-clock
ratios on a shared 2-core machine (bench_engine.py, +-5 % round to round) cannot.

    python bench/bench_steps.py [--only small|big|preset] [--epochs 1 2]

Each side trains a whole run of E1 and of E2 epochs, each in a fresh process under callgrind;
(count(E2) - count(E1)) / (steps(E2) - steps(E1)) is one step's cost with start-up cancelled (imports, data,
model) and everything per epoch amortised: the engine's evaluations, flushes, per-layer samples,
checkpoints and its writer thread. The engine side is Engine._train as the app and the CLI run it (b and c
of bench_engine.py, without the client). Under valgrind code runs ~50x slower, so the engine's clock is a
step counter there: it reads as many seconds as the steps took at full speed (timed first, without
valgrind), and the flush every 0.1 s, the per-layer samples ~10 a second, the checkpoint and prediction
intervals come out as they do at full speed. Needs valgrind (apt-get install valgrind); without it, it says
so and exits 0. About 6 minutes for the small MLP on 2 cores (torch's import alone is ~10 G instructions).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

HERE = Path(__file__).resolve()
ENV = {**os.environ, "PYTHONHASHSEED": "0", "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1",
       "MKL_NUM_THREADS": "1"}


# ------------------------------------------------------------------------------- the child: one run, counted

def child(side: str, workload: str, epochs: int, seconds_per_step: float) -> None:
    """Train one run (bare loop or engine) and print its steps as JSON; the parent counts its instructions."""
    import queue  # noqa: F401 - bind the real clock for queue's timeouts before it is replaced
    import threading  # noqa: F401

    if seconds_per_step > 0:
        steps = [0]  # the engine's clock: the steps trained so far, at the full-speed seconds per step
        fake = lambda: steps[0] * seconds_per_step  # noqa: E731
        time.perf_counter = time.monotonic = fake  # before torchtui binds them (dataclass default factories)

    import torch

    # A seeded bare loop, as the engine's run is (config seed): unseeded, its count moved 42k instructions a step
    # between two runs of the same code, in MKL's sqrt (Adam's), whose cost follows the values (a slow path for
    # denormal ones): 29k a step in one run, 63k in the next.
    torch.manual_seed(0)
    sys.path.insert(0, str(HERE.parent))
    from bench_engine import BATCH, WORKLOADS, bare

    from torchtui.engine import protocol as p
    from torchtui.engine.config import from_dict
    from torchtui.engine.data.splits import load_data

    torch.set_num_threads(1)
    cfg = WORKLOADS[workload][1](False, 0)  # stats_every 0: auto, as shipped
    cfg["train"]["epochs"] = epochs
    # BENCH_STEPS_TRAIN='{"snapshots": false, "guard": "off"}': train fields of the engine's run (two counts of
    # one feature on and off: bench_snapshots.py's instruction figure)
    cfg["train"].update(json.loads(os.environ.get("BENCH_STEPS_TRAIN") or "{}"))
    if side == "bare":
        splits = load_data(from_dict(cfg).data)
        bare(splits.x_train, splits.y_train, cfg["model"]["layers"], splits.n_classes, epochs, cfg["train"]["lr"])
        n = len(splits.x_train)
        print(json.dumps({"steps": -(-n // BATCH) * epochs}))
        return
    from torchtui.engine.run import loop
    from torchtui.engine.run.engine import Engine

    real_fit, training = loop.fit, [0.0]
    if seconds_per_step > 0:
        real_step = loop.optimizer_step

        def counted_step(run):  # one Python call a step more for the engine: its count errs high, not low
            real_step(run)
            steps[0] += 1

        loop.optimizer_step = counted_step
    else:
        def timed_fit(run):  # the training loop's own time, without the run's set-up and summary
            began = time.perf_counter()
            try:
                return real_fit(run)
            finally:
                training[0] = time.perf_counter() - began

        loop.fit = timed_fit
    events: list = []
    with tempfile.TemporaryDirectory() as runs:
        failure = Engine(events.append, runs)._train(p.Start(config=cfg))
    finished = [e for e in events if isinstance(e, p.RunFinished)]
    if failure or not finished or finished[0].state != p.FINISHED:
        raise SystemExit(f"the engine's run did not finish: {failure or finished}")
    print(json.dumps({"steps": finished[0].summary["steps"], "fit_seconds": training[0]}))


# ------------------------------------------------------------------------------- the parent: counts and ratios

def run_child(side: str, workload: str, epochs: int, seconds_per_step: float, counted: bool,
              keep: str | None = None) -> dict:
    cmd = [sys.executable, str(HERE), "--child", side, "--only", workload, "--run-epochs", str(epochs),
           "--seconds-per-step", repr(seconds_per_step)]
    with tempfile.TemporaryDirectory() as tmp:
        if counted:
            out = Path(keep or tmp) / f"callgrind.{workload}.{side}.{epochs}"
            cmd = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", *cmd]
        done = subprocess.run(cmd, capture_output=True, text=True, env=ENV)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} exited {done.returncode}:\n{done.stderr[-3000:]}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    if counted:
        result["instructions"] = int(re.findall(r"Collected : (\d+)", done.stderr)[-1])
    return result


def measure(workload: str, e1: int, e2: int, keep: str | None) -> dict:
    # The full-speed seconds per step, the fastest of three runs: the engine's clock under valgrind, so a run slowed
    # by a neighbour (1,060 against 620 us a step, minutes apart) would count ~1.7x the flushes a step.
    native = min((run_child("engine", workload, e2, 0.0, counted=False) for _ in range(3)),
                 key=lambda r: r["fit_seconds"])
    per_step = native["fit_seconds"] / native["steps"]
    print(f"\n{workload}: the engine at full speed trains {native['steps']:,} steps in {native['fit_seconds']:.2f} s "
          f"({per_step * 1e6:.0f} us a step); counting runs of {e1} and {e2} epochs under valgrind ...", flush=True)
    jobs = [(side, e) for side in ("bare", "engine") for e in (e1, e2)]
    with ThreadPoolExecutor(os.cpu_count() or 1) as pool:  # four processes, one per core at a time
        counted = dict(zip(jobs, pool.map(
            lambda job: run_child(job[0], workload, job[1], per_step if job[0] == "engine" else 0.0, True, keep),
            jobs)))
    out = {}
    for side in ("bare", "engine"):
        runs = [counted[side, e1], counted[side, e2]]
        steps = runs[1]["steps"] - runs[0]["steps"]
        out[side] = (runs[1]["instructions"] - runs[0]["instructions"]) / steps
        print(f"  {side:<6}  {runs[0]['instructions']:>16,} / {runs[1]['instructions']:>16,} instructions "
              f"({runs[0]['steps']:,} / {runs[1]['steps']:,} steps): {out[side]:,.0f} a step", flush=True)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=["small", "big", "preset"], action="append",
                        help="a workload (repeatable; default small: the big MLP is compute-bound, its overhead "
                             "shows in bench_engine.py, and its runs take ~40 minutes under valgrind)")
    parser.add_argument("--epochs", type=int, nargs=2, default=[1, 2], metavar=("E1", "E2"),
                        help="the two run lengths whose difference is counted (default 1 2)")
    parser.add_argument("--keep", metavar="DIR", help="keep callgrind's files there (for callgrind_annotate)")
    parser.add_argument("--child", choices=["bare", "engine"], help=argparse.SUPPRESS)
    parser.add_argument("--run-epochs", type=int, default=1, help=argparse.SUPPRESS)
    parser.add_argument("--seconds-per-step", type=float, default=0.0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child(args.child, args.only[0], args.run_epochs, args.seconds_per_step)
    if shutil.which("valgrind") is None:
        print("skipped: valgrind is not installed (apt-get install valgrind)")
        return
    e1, e2 = args.epochs
    if not 0 < e1 < e2:
        parser.error("--epochs E1 E2 needs 0 < E1 < E2")
    results = {w: measure(w, e1, e2, args.keep) for w in args.only or ["small"]}
    print("\ninstructions per training step (callgrind, all threads), whole runs, start-up cancelled")
    print(f"{'workload':<10}{'bare':>14}{'engine':>14}{'engine - bare':>16}{'bare / engine':>16}")
    for w, r in results.items():
        print(f"{w:<10}{r['bare']:>14,.0f}{r['engine']:>14,.0f}{r['engine'] - r['bare']:>16,.0f}"
              f"{r['bare'] / r['engine']:>16.3f}")
    print("(bare / engine is what c/b of bench_engine.py would be on a machine with nothing else running, "
          "if every instruction cost the same; target >= 0.95)")


if __name__ == "__main__":
    main()
