"""Where one rank's step time goes (data wait, compute, communication wait), and which rank the others wait for.

Each rank of a data-parallel run keeps a RankClock. A step's time splits at three marks: the batch arrives
(before it: data wait), the last gradient bucket is handed to DDP's all-reduce (the rank's own work is done:
what comes after it until the averaged gradients are back is communication wait), and the optimizer step ends
(compute again). On the CPU the marks are wall-clock readings; on a GPU they are CUDA events recorded on the
stream, read once at the flush that already syncs (elapsed_time of events that have completed: no extra sync).
The figures of every rank travel to rank 0 inside the flush's one all-reduce (StepBuffer's `extra`).
"""

from __future__ import annotations

import os
import time

FIELDS = ("data_wait", "compute", "comm_wait", "samples_per_s", "memory")  # a rank's row in the gathered matrix


class RankClock:
    """The running split of this rank's time since the last flush."""

    def __init__(self, device):
        self.cuda = device.type == "cuda"
        self.device = device
        self.reset()

    def reset(self) -> None:
        self.compute = self.comm = 0.0
        self.samples = 0
        self.since = time.perf_counter()
        self.pending: list = []          # GPU: (start, ready, backward_end, step_end) events of each step
        self._start = self._ready = self._back = None

    # ------------------------------------------------------------------ marks, in a step's order

    def step_start(self) -> None:
        self._start, self._ready = self._mark(), None

    def bucket_ready(self) -> None:
        """DDP's comm hook: a gradient bucket is complete here (the last call of a step wins)."""
        self._ready = self._mark()

    def backward_end(self) -> None:
        """The averaged gradients are back (DDP's backward returned)."""
        self._back = self._mark()

    def step_end(self, rows: int) -> None:
        end = self._mark()
        self.samples += rows
        if self._start is None:
            return
        ready = self._ready if self._ready is not None else self._back  # no_sync everywhere: nothing to wait for
        back = self._back if self._back is not None else end
        if self.cuda:
            self.pending.append((self._start, ready or back, back, end))
        else:
            ready = ready if ready is not None else back
            self.compute += (ready - self._start) + (end - back)
            self.comm += back - ready
        self._start = self._ready = self._back = None

    def sync_wait(self, seconds: float) -> None:
        """Wall time spent in a sync point's broadcast: waiting for the other ranks, too."""
        self.comm += seconds

    def _mark(self):
        if not self.cuda:
            return time.perf_counter()
        import torch

        event = torch.cuda.Event(enable_timing=True)
        event.record()
        return event

    # ------------------------------------------------------------------ the flush

    def row(self, steps: int, data_wait: float) -> list[float]:
        """This rank's FIELDS: seconds per step of each part, samples/s and device memory (bytes); then reset.
        `data_wait`: the host's wall time waiting for batches since the last flush (loop._waited; on every
        device it is the host that waits). Called in the flush: on a GPU the last step's event is waited
        for, the sync the flush makes anyway."""
        if self.cuda:
            if self.pending:
                self.pending[-1][-1].synchronize()
            for start, ready, back, end in self.pending:
                self.compute += (start.elapsed_time(ready) + back.elapsed_time(end)) / 1000
                self.comm += ready.elapsed_time(back) / 1000
        seconds = time.perf_counter() - self.since
        n = max(1, steps)
        out = [data_wait / n, self.compute / n, self.comm / n, self.samples / seconds if seconds > 0 else 0.0,
               float(memory(self.device))]
        self.reset()
        return out


def memory(device) -> int:
    """Device memory in use: CUDA's allocated bytes on a GPU (a host-side counter), else this process's RSS."""
    if device.type == "cuda":
        import torch

        return torch.cuda.memory_allocated(device)
    try:
        with open("/proc/self/statm", encoding="ascii") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


def slowest(rows: list[dict]) -> tuple[int, str]:
    """(index of the rank the others wait for, its cause: "data wait" or "compute"): the one with the most own
    time per step (data wait + compute; the others spend that difference waiting in communication)."""
    if not rows:
        return -1, ""
    busy = [r["data_wait"] + r["compute"] for r in rows]
    worst = max(range(len(rows)), key=busy.__getitem__)
    others = [r for i, r in enumerate(rows) if i != worst] or rows
    extra_data = rows[worst]["data_wait"] - sum(r["data_wait"] for r in others) / len(others)
    extra_compute = rows[worst]["compute"] - sum(r["compute"] for r in others) / len(others)
    return worst, "data wait" if extra_data >= extra_compute else "compute"


def rank_row(dist, steps: int, data_wait: float) -> list[float]:
    """This rank's figures in its place of a world × len(FIELDS) matrix of zeros: summed over the ranks in the
    flush's all-reduce, the matrix holds every rank's row (a gather without a collective of its own)."""
    row = dist.clock.row(steps, data_wait)
    matrix = [0.0] * (dist.world * len(FIELDS))
    matrix[dist.rank * len(FIELDS):(dist.rank + 1) * len(FIELDS)] = row
    return matrix


def rank_stats(run, matrix: list[float]):
    """Rank 0: the gathered matrix as a RankStats event."""
    from torchtui.engine.protocol import RankStats

    k = len(FIELDS)
    rows = [dict(zip(FIELDS, matrix[i * k:(i + 1) * k])) for i in range(len(matrix) // k)]
    worst, cause = slowest(rows)
    return RankStats(run.run_id, run.step, list(run.dist.hosts), [r["data_wait"] for r in rows],
                     [r["compute"] for r in rows], [r["comm_wait"] for r in rows],
                     [r["samples_per_s"] for r in rows], [int(r["memory"]) for r in rows], worst, cause)
