"""The evaluation events callback, and appending rows to metrics.jsonl."""

from __future__ import annotations

import errno
from collections.abc import Callable

from torchtui.engine.formatting import fmt_step
from torchtui.engine.protocol import FAILED, Error, EvalResult, Stop
from torchtui.engine.run.callbacks import Callback, Emit
from torchtui.engine.runs import eval_row


def write_failed(run, emit: Emit, what: str, step: int, err: BaseException) -> None:
    """A write that failed (rows, curve, checkpoint) ends the run as failed after this step, naming the last
    good checkpoint: a run is never `finished` over data that is not on disk. Said once; later failures of
    the same run (the writes already queued) add nothing."""
    if run.folder.write_failed:
        return
    code = getattr(err, "errno", None)
    why = "disk full" if code in (errno.ENOSPC, errno.EDQUOT) else (getattr(err, "strerror", None) or str(err))
    good = run.folder.last_good_step
    saved = f"last good checkpoint step {fmt_step(good)}" if good is not None else "no checkpoint was saved"
    reason = run.folder.write_failed = f"{why} writing {what} at step {fmt_step(step)}; {saved}"
    emit(Error(run.run_id, f"{reason}: the run stops as failed (free space, then torchtui resume "
                           f"{run.folder.path})"))
    if run.dist is not None:  # data parallel: every rank stops at the next sync point (a rank that stopped
        run.session.inbox.put(Stop())  # alone would leave the others waiting); Engine._finish makes it failed
    else:
        run.request_stop(FAILED, reason)


def append_rows(run, emit: Emit, rows: list | Callable[[], list],
                curve: list[float] | Callable[[], list[float]] | None = None) -> None:
    """Append to metrics.jsonl (and curve.f64), on the run's writer thread when it has one; a failure (a full
    disk) ends the run as failed (write_failed). `rows` and `curve` may be functions that make them, called
    where the write happens (off the training thread)."""
    step = run.step

    def outcome(err) -> None:
        if err is not None:
            write_failed(run, emit, "metrics.jsonl", step, err)

    if not rows or (run.dist is not None and not run.dist.leader):  # data parallel, rank 0 writes the files
        return

    def write():
        return run.folder.append_metrics(rows() if callable(rows) else rows, curve() if callable(curve) else curve)

    if run.writer is None:
        outcome(write())
    else:
        run.writer.submit(outcome, write)


def deliver(run, wait: bool = False) -> None:
    """Act on the outcomes of the writes the writer thread finished (all of them first, with `wait`)."""
    if run.writer is not None:
        for handle, outcome in (run.writer.drain() if wait else run.writer.results()):
            handle(outcome)


class EvalEvents(Callback):
    """Emits each evaluation and appends it to metrics.jsonl."""

    def __init__(self, emit: Emit):
        self.emit = emit

    def on_validation_end(self, run, split, metrics):
        scalars = {k: v for k, v in metrics.items() if k not in ("confusion", "dead_relu")}
        self.emit(EvalResult(run.run_id, split, run.step, run.epoch, scalars,
                             metrics.get("confusion"), metrics.get("dead_relu", {})))
        append_rows(run, self.emit, [eval_row(split, run.step, run.epoch, scalars,
                                                           metrics.get("dead_relu", {}))])
