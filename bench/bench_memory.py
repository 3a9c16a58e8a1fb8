"""The app's memory over a long run: torchtui in tmux trains a tiny model for 200,000+ steps while the
resident memory of the UI process and of the engine's worker is sampled.

    python bench/bench_memory.py [--steps 200000] [--every 5]

Prints RSS samples (MiB) and the ratio of the UI's memory at the end to its memory once the charts are
full (after the first 10 % of the run): flat means about 1.0. Not a test; always exits 0.
"""

from __future__ import annotations

import argparse
import re
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from bench_tui import TORCHTUI, Tmux, tui_processes  # noqa: E402 - a sibling script, not a package

BATCH = 4
SAMPLES = 1000  # 800 train -> 200 steps an epoch


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=200_000)
    parser.add_argument("--every", type=float, default=5.0, help="seconds between samples")
    args = parser.parse_args()
    epochs = -(-args.steps // (SAMPLES * 4 // 5 // BATCH))
    tmp = Path(tempfile.mkdtemp(prefix="torchtui-bench-memory-"))
    tmux = Tmux(tmp)
    session = "memory"
    tmux.launch(session, [TORCHTUI, "moons", "--runs-dir", str(tmp / "runs"), "--epochs", str(epochs),
                          "--set", f"data.n_samples={SAMPLES}", "--set", f"train.batch_size={BATCH}",
                          "--set", "data.test_fraction=0", "--set", "model.layers=[8, 8]", "--set", "device.threads=1"])
    samples: list[tuple[float, int, float, float]] = []
    try:
        tmux.wait(session, r"engine ready", timeout=120, interval=0.1)
        pids = tui_processes(tmux, session)
        tmux.keys(session, "Space")
        started = time.monotonic()
        while True:
            screen = tmux.capture(session)
            step = re.search(r"step (\d+)/(\d+)", screen)
            done = re.search(r"^\s+(finished|failed|diverged)\s", screen, re.M)
            samples.append((time.monotonic() - started, int(step.group(1)) if step else 0,
                            rss_mib(pids["ui"]), rss_mib(pids["worker"])))
            t, s, ui, worker = samples[-1]
            print(f"  {t:6.0f} s  step {s:>8,}  UI {ui:7.1f} MiB  worker {worker:7.1f} MiB", flush=True)
            if done:
                break
            time.sleep(args.every)  # the sampling interval
    finally:
        tmux.quit(session)
        tmux.close()
    total = samples[-1][1]
    warm = next((x for x in samples if x[1] >= total // 10), samples[0])
    ui_max = max(x[2] for x in samples)
    print(f"\nsteps {total:,} in {samples[-1][0]:.0f} s")
    print(f"UI RSS: {warm[2]:.1f} MiB at step {warm[1]:,} (10 %), {samples[-1][2]:.1f} MiB at the end, "
          f"max {ui_max:.1f} MiB; end / 10 % = {samples[-1][2] / warm[2]:.3f}")
    print(f"worker RSS: {warm[3]:.1f} MiB at 10 %, {samples[-1][3]:.1f} MiB at the end; "
          f"end / 10 % = {samples[-1][3] / warm[3]:.3f}")
    print("command: python bench/bench_memory.py")
    return 0


if __name__ == "__main__":
    sys.exit(main())
