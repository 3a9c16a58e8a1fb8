"""In-memory snapshots of a run's whole training state: what a rewind branches from and the spike guard rolls back to.

A snapshot is everything the next step depends on: weights, optimizer, schedules, grad scaler, the RNG states
(CPU and every GPU), the data position (epoch and batch: the epoch's order is a function of the seed and the
epoch), the step, the live fields (base lr, grad clip; the lr and weight decay live in the optimizer's state)
and the callbacks' states (early stopping). Restoring one and training on reproduces the original steps exactly
on the CPU (tests/engine/test_rewind.py).

Snapshots are taken between two steps, every `train.snapshot_every` seconds (auto: every SNAPSHOT_AUTO_S, or
100x what the last copy took when that is longer, so they cost at most ~1 % of the time), by copying each tensor
(ckpt.snapshot: a CPU clone, or an asynchronous copy from the GPU into pinned memory that the training thread
only queues). They live in a ring bounded by `train.snapshot_memory`; to fit, older ones thin out: the newest
DENSE stay, and among older ones the one whose neighbours are closest for its age goes first (recent dense,
old sparse, roughly geometric). They are not checkpoints: a kill loses them (README).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import torch

from torchtui.engine.run import checkpoint as ckpt

SNAPSHOT_AUTO_S = 2.0     # train.snapshot_every 0: at most this far apart …
AUTO_COST_FACTOR = 100    # … unless a copy took more than 1/100 of that: then 100x the copy's time
DENSE = 6                 # the newest this many are never thinned out
MAX_SNAPSHOTS = 48        # at most this many, whatever the memory allows
AUTO_MEMORY_SHARE = 0.10  # train.snapshot_memory 0: this share of the free host memory …
AUTO_MEMORY_MAX = 4 << 30  # … at most this many bytes


@dataclass
class Snapshot:
    """One training state in host memory, with what a list of them shows."""
    step: int
    epoch: float
    time: float
    run_id: str
    run_dir: str
    state: dict
    nbytes: int
    loss: float | None = None
    val: dict = field(default_factory=dict)
    ready: Any = None  # waits for the copies from the GPU (None on the CPU)

    def listing(self) -> dict:
        return {"step": self.step, "epoch": round(self.epoch, 4), "time": self.time, "loss": self.loss,
                "val": dict(self.val), "run_id": self.run_id, "bytes": self.nbytes}


class SnapshotRing:
    """The snapshots of the session's runs, oldest first, within a memory budget (bytes)."""

    def __init__(self, budget: int, limit: int = MAX_SNAPSHOTS, dense: int = DENSE):
        self.budget, self.limit, self.dense = budget, limit, dense
        self.items: list[Snapshot] = []

    def __len__(self) -> int:
        return len(self.items)

    @property
    def nbytes(self) -> int:
        return sum(s.nbytes for s in self.items)

    def add(self, snap: Snapshot) -> None:
        """Keep `snap` (the newest), thinning older ones to fit the count and the budget."""
        self.items.append(snap)
        while len(self.items) > 1 and (len(self.items) > self.limit or self.nbytes > self.budget):
            del self.items[self._victim()]

    def _victim(self) -> int:
        """Which snapshot goes: among those older than the dense tail, the one whose removal leaves the smallest
        gap for its age (so spacing grows with age); the oldest when only the dense tail is left."""
        items, newest = self.items, self.items[-1].step
        candidates = range(1, len(items) - self.dense)
        if not candidates:
            return 0
        return min(candidates, key=lambda i: (items[i + 1].step - items[i - 1].step) / (newest - items[i].step + 1))

    def pick(self, step: int | None = None, before: int | None = None) -> Snapshot | None:
        """The newest snapshot at or before `step`, or strictly before `before`, or the newest of all."""
        for snap in reversed(self.items):
            if (step is None or snap.step <= step) and (before is None or snap.step < before):
                return snap
        return None

    def drop_after(self, step: int) -> None:
        """Forget the snapshots after `step`: the run went back there, so they belong to a timeline it left."""
        self.items = [s for s in self.items if s.step <= step]


def auto_budget() -> int:
    """train.snapshot_memory 0: a share of the host memory available now, bounded."""
    free = _available_memory()
    return int(min(AUTO_MEMORY_MAX, free * AUTO_MEMORY_SHARE)) if free else 256 << 20


def _available_memory() -> int:
    try:
        with open("/proc/meminfo", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        import os

        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return 0


def training_state(run) -> dict:
    """Everything the next step depends on, by reference (copied by `take`)."""
    return {
        **ckpt.run_state(run),
        "callbacks": [cb.state_dict() for cb in run.callbacks.callbacks],
        "last_val": dict(run.last_val),
    }


def nbytes(value: Any) -> int:
    if isinstance(value, torch.Tensor):
        return value.numel() * value.element_size()
    if isinstance(value, dict):
        return sum(nbytes(v) for v in value.values())
    if isinstance(value, (list, tuple)):
        return sum(nbytes(v) for v in value)
    return 0


class Snapshotter:
    """Takes the active run's snapshots when due; the ring outlives a run, so a branch keeps its parent's."""

    def __init__(self, every: float, budget: int):
        self.every = every          # seconds between snapshots (0: auto)
        self.ring = SnapshotRing(budget)
        self.cost = 0.0             # seconds the last copy took on the training thread
        self.taken_at = float("-inf")
        self.too_big = False        # one snapshot would not fit the budget: none are taken

    @property
    def interval(self) -> float:
        return self.every or max(SNAPSHOT_AUTO_S, AUTO_COST_FACTOR * self.cost)

    def due(self) -> bool:
        return not self.too_big and time.monotonic() - self.taken_at >= self.interval

    def take(self, run, loss: float | None) -> Snapshot | None:
        """Copy the run's state now (between two steps) into the ring; None when one would not fit."""
        started = time.perf_counter()
        self.taken_at = time.monotonic()
        state, ready = ckpt.snapshot(training_state(run))
        size = nbytes(state)
        self.cost = time.perf_counter() - started
        if size > self.ring.budget:
            self.too_big = True
            return None
        last = run.steps_per_epoch and (run.step / run.steps_per_epoch)
        val = {k: v for k, v in run.last_val.items() if isinstance(v, (int, float))}
        snap = Snapshot(run.step, float(last), time.time(), run.run_id, str(run.folder.path), state, size, loss, val,
                        ready)
        self.ring.add(snap)
        return snap


def restore(run, snap: Snapshot) -> None:
    """Put the run back to `snap` (between two steps): the state is copied again, so training from it leaves the
    snapshot as it was (Optimizer.load_state_dict keeps the tensors it is given when they already fit)."""
    from torchtui.engine.run.prepare import _counters_back as counters_back

    if snap.ready is not None:
        snap.ready()
    state, ready = ckpt.snapshot(snap.state)
    ready()
    run.plain_model.load_state_dict(state["model"])
    run.optimizer.load_state_dict(state["optimizer"])
    if run.scheduler is not None and state["scheduler"]:
        run.scheduler.load_state_dict(state["scheduler"])
        counters_back(run.scheduler)
    if run.plateau is not None and state["plateau"]:
        run.plateau.load_state_dict(state["plateau"])
    if run.scaler is not None and state["scaler"]:
        run.scaler.load_state_dict(state["scaler"])
    run.step, run.epoch, run.batch_in_epoch = state["step"], state["epoch"], state["batch_in_epoch"]
    run.best, run.grad_clip, run.base_lr = state["best"], state["grad_clip"], state["base_lr"]
    run.last_val = dict(state["last_val"])
    for cb, saved in zip(run.callbacks.callbacks, state["callbacks"]):
        if saved:
            cb.load_state_dict(saved)
    ckpt.set_rng_state(state["rng"])
    run.optimizer.zero_grad(set_to_none=True)
    run.jumped = True  # the loop starts the epoch's batches again from the restored position
