"""One rank of a data-parallel run: torch.distributed with DistributedDataParallel, one process per device.

The engine (launcher.py) starts the ranks with torch.multiprocessing. Each rank builds the same run (same
config, same seeded split), trains its shard of every batch, and DDP averages the gradients. Rank 0 speaks
the protocol (events, checkpoints, metrics.jsonl); the others only train. The ranks meet at sync points,
about every SYNC_S seconds at a step rank 0 chooses and broadcasts: there the commands rank 0 received
(pause, step, lr …) are applied by every rank at the same step, and the step statistics are all-reduced
in the one flush. Between sync points a rank does nothing but train: no per-step collective besides DDP's.
"""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

SYNC_S = 0.1           # about this long between sync points while training
MAX_INTERVAL = 500     # steps between sync points at most (bounds the buffered statistics, as FLUSH_STEPS does)
HEARTBEAT_S = 30.0     # a paused run's ranks hear from rank 0 at least this often: a collective waits TIMEOUT
TIMEOUT = timedelta(minutes=30)


@dataclass
class Dist:
    """This rank's place in the run, and what the loop, the controls and the statistics ask of torch.distributed."""
    rank: int
    world: int
    device: Any                     # torch.device of this rank
    devices: list = field(default_factory=list)  # the run's CUDA indices, one a rank (empty on the CPU)
    train_size: int = 0             # samples in the train split (every rank has all of them)
    control: Any = None             # a gloo group: commands and metrics (Python objects) go through it
    lockstep: bool = False          # inside code every rank runs at the same step: collectives are safe
    next_sync: int = 0              # the step (run.step) at which the ranks meet next
    interval: int = 1
    last_sync: float = field(default_factory=time.perf_counter)
    last_sync_step: int = 0
    record: Path | None = None      # ranks/<rank>.jsonl in the run folder: what this rank applied, and when
    hosts: list = field(default_factory=list)  # every rank's host name (introduce())
    clock: Any = None               # rank_clock.RankClock: where this rank's step time goes

    def __post_init__(self):
        from torchtui.engine.run.rank_clock import RankClock

        self.clock = RankClock(self.device)

    @property
    def leader(self) -> bool:
        return self.rank == 0

    def introduce(self) -> None:
        """Learn every rank's host name (once, as the run starts: the per-rank view names ranks host:rank)."""
        import socket

        import torch.distributed as dist

        names: list = [None] * self.world
        dist.all_gather_object(names, socket.gethostname(), group=self.control)
        self.hosts = [str(n) for n in names]

    # ------------------------------------------------------------------ collectives

    def broadcast(self, value: Any = None) -> Any:
        """Rank 0's `value` on every rank (pickled, through the gloo group)."""
        import torch.distributed as dist

        box = [value]
        dist.broadcast_object_list(box, src=0, group=self.control)
        return box[0]

    def all_reduce_sum(self, tensor):
        """`tensor` summed over the ranks, in place (NCCL on GPUs, gloo on the CPU)."""
        import torch.distributed as dist

        dist.all_reduce(tensor)
        return tensor

    @contextmanager
    def together(self):
        """Mark code every rank runs at the same step (sync points, evaluations, the end of fit)."""
        before, self.lockstep = self.lockstep, True
        try:
            yield
        finally:
            self.lockstep = before

    # ------------------------------------------------------------------ batches

    def shard(self, order, batch_size: int):
        """This rank's part of an epoch's sample order: the same slice of each global batch of
        batch_size × world samples, so that the ranks together train exactly the batches one process would
        with a world-times-larger batch. A last global batch too small to give every rank a sample is left out."""
        import torch

        n = len(order)
        if batch_size <= 0:  # the whole split at once: each rank takes its share
            return torch.tensor_split(order, self.world)[self.rank] if n >= self.world else order[:0]
        size = batch_size * self.world
        full, rest = divmod(n, size)
        parts = [order[:full * size].view(full, self.world, batch_size)[:, self.rank].reshape(-1)]
        if rest >= self.world:
            parts.append(torch.tensor_split(order[full * size:], self.world)[self.rank])
        return torch.cat(parts) if len(parts) > 1 else parts[0]

    def batches(self, n: int, batch_size: int) -> int:
        """Global batches in an epoch of n samples."""
        if batch_size <= 0:
            return 1 if n >= self.world else 0
        full, rest = divmod(n, batch_size * self.world)
        return full + (1 if rest >= self.world else 0)

    def weight(self, batch_index: int, batch_size: int, rows: int) -> float:
        """The factor this rank's mean loss takes so that DDP's average of the ranks' gradients is the gradient of
        the mean over the whole global batch: 1 for full batches, rows × world / global rows for the last one."""
        size = batch_size * self.world if batch_size > 0 else self.train_size
        total = min(size, self.train_size - batch_index * size)
        return rows * self.world / max(1, total)

    def no_sync(self, model):
        """DDP's no_sync (gradient accumulation: only the last micro-batch of a step averages over ranks)."""
        from torchtui.engine.models.build import unwrap_to_ddp

        ddp = unwrap_to_ddp(model)
        return ddp.no_sync() if ddp is not None else nullcontext()

    # ------------------------------------------------------------------ the record

    def note(self, step: int, **fields) -> None:
        """Append a line to this rank's record (commands applied, the end); a failed write only loses the line."""
        if self.record is None:
            return
        try:
            with open(self.record, "a", encoding="utf-8") as fh:
                fh.write(json.dumps({"rank": self.rank, "step": step, **fields}) + "\n")
        except OSError:
            pass

    def open_record(self, run_dir: str) -> None:
        folder = Path(run_dir) / "ranks"
        try:
            folder.mkdir(exist_ok=True)
        except OSError:
            return
        self.record = folder / f"{self.rank}.jsonl"
        self.note(0, pid=os.getpid(), device=str(self.device), world=self.world)


def loopback_interface() -> str | None:
    """The loopback network interface's name (lo on Linux): the ranks of a run talk to each other over it only."""
    import socket

    try:
        names = [name for _, name in socket.if_nameindex()]
    except OSError:
        return None
    return next((name for name in names if name.startswith("lo")), None)


def rank_main(rank: int, engine_class: type, world: int, command, runs_dir: str | None, store: str, backend: str,
              cuda: list[int] | None, events, commands, threads: int, parent: int) -> None:
    """Entry point of one rank (torch.multiprocessing.start_processes calls it with the rank first). It trains
    with an `engine_class` (run.engine.Engine, passed in: the engine is what starts the ranks)."""
    # The parent engine owns the keyboard and the terminal: it turns a Ctrl-C or a hang-up into a Stop, which
    # reaches every rank at the next sync point. A rank whose parent is gone exits (the watchdog).
    for sig in (signal.SIGINT, getattr(signal, "SIGHUP", None)):
        if sig is not None:
            signal.signal(sig, signal.SIG_IGN)
    threading.Thread(target=_watch_parent, args=(parent,), daemon=True, name="torchtui-rank-watchdog").start()
    iface = loopback_interface()
    if iface:
        os.environ.setdefault("GLOO_SOCKET_IFNAME", iface)
        os.environ.setdefault("NCCL_SOCKET_IFNAME", iface)
    import torch
    import torch.distributed as dist

    from torchtui.engine import protocol as p

    # What torchrun gives each process: the user's code (a data source, a model) may read its rank the same way.
    os.environ.update(RANK=str(rank), WORLD_SIZE=str(world), LOCAL_RANK=str(rank), LOCAL_WORLD_SIZE=str(world))
    device = torch.device("cuda", cuda[rank]) if cuda else torch.device("cpu")
    if cuda:
        torch.cuda.set_device(device)
    if threads:
        torch.set_num_threads(threads)
    dist.init_process_group(backend, init_method=f"file://{store}", rank=rank, world_size=world, timeout=TIMEOUT)
    control = dist.new_group(backend="gloo", timeout=TIMEOUT) if backend != "gloo" else dist.group.WORLD
    here = Dist(rank=rank, world=world, device=device, devices=list(cuda or []), control=control)
    here.introduce()

    if rank == 0:
        engine = engine_class(events.put, runs_dir)
        threading.Thread(target=_relay_commands, args=(commands, engine), daemon=True,
                         name="torchtui-rank-inbox").start()
    else:
        engine = engine_class(lambda event: None, runs_dir)  # only rank 0 reports; the others' problems go below
    failure = engine.run_rank(command, here)
    if failure is not None:
        if rank != 0:  # rank 0 reported it already, like any failed run
            message, trace = failure
            events.put(p.Error(None, f"rank {rank}: {message}", trace))
        # Exiting non-zero makes the parent end the other ranks, which may be waiting in a collective for this one.
        os._exit(1)
    # Every rank ends its run before any takes the process group down: a rank whose peer closed its
    # connections while it still had messages in flight aborted (SIGABRT) in gloo's background thread.
    dist.barrier(group=control)
    dist.destroy_process_group()


def _relay_commands(commands, engine) -> None:
    """Rank 0: the parent engine's commands into this rank's inbox (the controls read it at sync points)."""
    while True:
        try:
            engine.inbox.put(commands.recv())
        except (EOFError, OSError):
            return


def _watch_parent(parent: int) -> None:
    while os.getppid() == parent:
        time.sleep(1.0)  # polling: no event tells a process its parent died
    os._exit(1)
