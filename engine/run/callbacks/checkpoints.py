"""The checkpoint callback: last.pt and best.pt written atomically, throttled, always at the end."""

from __future__ import annotations

import time
from collections.abc import Callable

from torchtui.engine.protocol import DIVERGED, FINISHED, CheckpointSaved
from torchtui.engine.run import checkpoint as ckpt
from torchtui.engine.run.callbacks import Callback, Emit, improved, metric_mode
from torchtui.engine.run.callbacks.events import deliver, write_failed


class Checkpoints(Callback):
    """Writes last.pt and best.pt atomically, each at most every `every` seconds (train.checkpoint_every;
    0 = at every epoch end), and always at the end.

    Short epochs would otherwise spend more time serialising and fsyncing than training. An improved
    best is snapshotted in memory at once (a tensor copy) and written when the interval allows, so
    best.pt always holds the best weights by the end; a kill loses at most `every` seconds of either.
    A write that fails (a full disk) ends the run as failed, naming the last good checkpoint (which stays
    whole): events.write_failed.
    """

    def __init__(self, emit: Emit, make_payload: Callable, every: float = 10.0):
        self.emit = emit
        self.make_payload = make_payload
        self.every = every
        self.written = {"last": float("-inf"), "best": float("-inf")}
        self.saved_step = -1
        self.pending_best: tuple[dict, int, int] | None = None

    def save(self, run, kind: str) -> None:
        """Write last.pt (kind last or manual) or best.pt now, from the run's current state."""
        run.callbacks.on_flush(run)
        if run.end_state == DIVERGED:
            return  # keep the last good checkpoint, never overwrite it with non-finite weights
        guard = run.session.guard
        if guard is not None and guard.trip is not None:
            return  # nor with a spike's weights the guard is about to roll back (or asks about)
        if kind == "best":
            self.pending_best = None
        self._write(run, "last" if kind == "manual" else kind, kind, ckpt.snapshot(self.make_payload(run)), run.step,
                    run.epoch)
        if kind == "manual":
            deliver(run, wait=True)  # asked for (perhaps while paused, when no flush comes): say when it is on disk

    def _write(self, run, name: str, kind: str, snapshot: tuple, step: int, epoch: int) -> None:
        """Write a snapshot of the payload (ckpt.snapshot: the weights move on with the next step): serialised,
        written and fsynced on the run's writer thread."""
        path = run.folder.checkpoint_path(name)
        payload, ready = snapshot
        self.written[name] = time.monotonic()  # the interval counts from now, also when the write fails

        def outcome(err) -> None:
            if isinstance(err, Exception):
                write_failed(run, self.emit, path.name, step, err)
                return
            if name == "last":
                self.saved_step = run.folder.last_good_step = step
            self.emit(CheckpointSaved(run.run_id, str(path), kind, step, epoch))

        def write() -> None:
            ready()  # the copies from the GPU have landed
            ckpt.write_serialised(path, ckpt.serialise(payload))

        if run.writer is None:
            try:
                outcome(write())
            except OSError as err:
                outcome(err)
        else:
            run.writer.submit(outcome, write)

    def _due(self, name: str) -> bool:
        return time.monotonic() - self.written[name] >= self.every

    def _write_pending_best(self, run) -> None:
        if self.pending_best is not None:
            payload, step, epoch = self.pending_best
            self.pending_best = None
            self._write(run, "best", "best", payload, step, epoch)

    def on_validation_end(self, run, split, metrics):
        if split != "val":
            return
        metric = run.config.train.best_metric
        if metric in metrics and improved(metrics[metric], run.best, metric_mode(metric)):
            run.best = metrics[metric]
            if self._due("best"):
                self.save(run, "best")
            else:  # copies the tensors: the live weights move on with the next step
                self.pending_best = (ckpt.snapshot(self.make_payload(run)), run.step, run.epoch)

    def on_train_epoch_end(self, run):
        if self._due("best"):
            self._write_pending_best(run)
        if self._due("last"):
            self.save(run, "last")

    def on_fit_end(self, run):
        if run.folder.write_failed:
            deliver(run, wait=True)
            return  # the disk refused a write: another would fail too, and the last good checkpoint stays
        self._write_pending_best(run)  # it was finite when it was the best, whatever happened later
        deliver(run, wait=True)  # saved_step says whether last.pt already holds this step
        if run.end_state != FINISHED or run.batch_in_epoch or self.saved_step != run.step:
            self.save(run, "last")
        deliver(run, wait=True)
