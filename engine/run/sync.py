"""The controls of one rank of a data-parallel run: rank 0's commands reach every rank at the same step.

The ranks meet at sync points (distributed.Dist.next_sync): rank 0 broadcasts the commands it received since
the last one, the next interval and the statistics' sampling interval; every rank flushes its step statistics
(one all-reduce) and applies the commands. While paused, every step is a sync point and rank 0 broadcasts
each command as it comes (or nothing, every HEARTBEAT_S, so that no collective waits for its timeout).
"""

from __future__ import annotations

import dataclasses
import time

from torchtui.engine import protocol as p
from torchtui.engine.run.controls import Controls
from torchtui.engine.run.distributed import HEARTBEAT_S, MAX_INTERVAL, SYNC_S

# What every rank applies; anything else (evaluate, checkpoint, lr range test, requests) is rank 0's alone.
EVERY_RANK = (p.Pause, p.Resume, p.Step, p.Stop, p.Shutdown, p.SetHparams)


class SyncedControls(Controls):
    """Controls whose commands apply at sync points every rank reaches, at the same step."""

    def __init__(self, session, run, checkpoints, stats):
        super().__init__(session, run, checkpoints, stats)
        run.dist.next_sync = run.dist.last_sync_step = run.step  # meet before the first step

    def on_train_batch_start(self, run):
        dist, session = run.dist, self.session
        if run.step < dist.next_sync and not session.paused:
            return
        waited = False
        with dist.together():
            self._meet(run)
            while session.paused and not session.should_stop:
                if session.take_step():
                    break
                run.callbacks.on_flush(run)  # the client sees every step taken before the run waits
                waited = True
                self._apply(run, dist.broadcast(self._next_command() if dist.leader else None))
        dist.next_sync = run.step + (1 if session.paused else dist.interval)
        if waited:
            self.stats.restart_clock()
            dist.clock.reset()  # the per-rank view counts training, not the time spent paused
            dist.last_sync = time.perf_counter()

    def _meet(self, run) -> None:
        dist = run.dist
        payload = None
        if dist.leader:
            payload = {"commands": self.session.received(), "interval": self._interval(run),
                       "every": self.stats.wanted_every}
        began = time.perf_counter()
        payload = dist.broadcast(payload)
        dist.clock.sync_wait(time.perf_counter() - began)  # a rank that arrives early waits here for the others
        dist.interval = payload["interval"]
        if payload["every"]:
            self.stats.buffer.every = payload["every"]  # sampled steps alike on every rank
        run.callbacks.on_flush(run)
        self._apply(run, payload["commands"])

    def _next_command(self) -> list:
        """Rank 0, paused: the next command, or none after HEARTBEAT_S."""
        command = self.session.next_command(timeout=HEARTBEAT_S)
        return [] if command is None else [command]

    def _interval(self, run) -> int:
        """Steps to the next sync point: about SYNC_S seconds at the step rate since the last one."""
        dist, now = run.dist, time.perf_counter()
        steps, seconds = run.step - dist.last_sync_step, now - dist.last_sync
        dist.last_sync, dist.last_sync_step = now, run.step
        if steps <= 0 or seconds <= 0:
            return dist.interval
        return max(1, min(MAX_INTERVAL, round(steps / seconds * SYNC_S)))

    def _apply(self, run, commands: list) -> None:
        for command in commands:
            if run.dist.leader or isinstance(command, EVERY_RANK):
                fields = {k: v for k, v in dataclasses.asdict(command).items() if isinstance(v, (int, float, str))}
                run.dist.note(run.step, command=type(command).__name__, **fields)
                self.handle(run, command)
