"""kill -9 of a headless run at random points, twenty times: every checkpoint on disk is whole, `torchtui
resume` continues from the last one, and the finished run has every step exactly once."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import yaml

from torchtui.engine.run.checkpoint import load_checkpoint

KILLS = 20
EPOCHS = 300
CLI = [sys.executable, "-m", "torchtui.cli"]
# Checkpoints at every epoch end (about 3 MB each with Adam's state), so kills often land in a write.
PRESET = {"name": "killed", "data": {"source": "moons", "n_samples": 1000, "seed": 3},
          "model": {"layers": [256, 256]},
          # eval_budget 0: every epoch evaluated, so each evaluation row is checked once after the kills
          "train": {"epochs": EPOCHS, "batch_size": 64, "checkpoint_every": 0, "optimizer": "adam", "eval_budget": 0},
          "device": {"device": "cpu", "threads": 1}}


def start(*args: str) -> subprocess.Popen:
    return subprocess.Popen([*CLI, *args], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            stdin=subprocess.DEVNULL, env=dict(os.environ))


def wait_until(condition, timeout: float = 120.0, what: str = "condition", interval: float = 0.02) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(interval)  # polling interval, not a wait for an outcome


def steps_logged(run_dir: Path) -> int:
    path = run_dir / "metrics.jsonl"
    return path.stat().st_size if path.exists() else 0


def test_kill_9_twenty_times_then_resume_loses_nothing(tmp_path):
    preset = tmp_path / "killed.yaml"
    preset.write_text(yaml.safe_dump(PRESET))
    runs = Path(os.environ["TORCHTUI_RUNS_DIR"])
    rng = random.Random(20261123)
    proc = start("train", str(preset))
    wait_until(lambda: list(runs.glob("*-killed/checkpoints/last.pt")), what="the first checkpoint")
    (run_dir,) = runs.glob("*-killed")
    last = run_dir / "checkpoints" / "last.pt"
    mid_write = resumed_from = 0
    for kill in range(KILLS):
        size = steps_logged(run_dir)
        wait_until(lambda size=size, proc=proc: steps_logged(run_dir) > size or proc.poll() is not None,
                   what="training to go on")
        assert proc.poll() is None, f"the run ended before kill {kill + 1}: {proc.stderr.read().decode()}"
        if kill % 4 == 3:  # every fourth kill aims at a checkpoint being written
            wait_until(lambda: list((run_dir / "checkpoints").glob(".*.tmp")), what="a write", interval=0.0005)
        else:
            time.sleep(rng.uniform(0.0, 0.4))  # the random point to kill at (not a wait for anything)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        proc.stderr.close()
        mid_write += bool(list((run_dir / "checkpoints").glob(".*.tmp")))  # killed between write and rename
        for path in (run_dir / "checkpoints").glob("*.pt"):
            state = load_checkpoint(path)  # raises on a torn file
            assert state["step"] > 0
        resumed_from = load_checkpoint(last)["step"]
        proc = start("resume", str(run_dir))
    assert proc.wait(timeout=600) == 0, proc.stderr.read().decode()
    proc.stderr.close()
    summary = json.loads((run_dir / "summary.json").read_text())
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    steps = [r["step"] for r in rows if r["type"] == "step"]
    evals = [r["epoch"] for r in rows if r["type"] == "eval"]
    assert summary["state"] == "finished" and summary["epochs"] == EPOCHS
    assert steps == list(range(1, summary["steps"] + 1))  # every step once: none lost, none repeated
    assert evals == list(range(1, EPOCHS + 1))
    assert not list((run_dir / "checkpoints").glob(".*.tmp"))
    print(f"\n{KILLS} kill -9 at random points ({mid_write} inside a checkpoint write); every checkpoint loaded; "
          f"resumed {KILLS} times (the last from step {resumed_from}); finished {summary['steps']} steps, "
          f"each logged once")
    assert mid_write >= 1  # the loop did exercise a kill during a write
