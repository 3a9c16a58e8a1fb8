"""The evaluation events callback, and appending rows to metrics.jsonl."""

from __future__ import annotations

from collections.abc import Callable

from torchtui.engine.protocol import Error, EvalResult
from torchtui.engine.run.callbacks import Callback, Emit
from torchtui.engine.runs import eval_row


def append_rows(run, emit: Emit, rows: list | Callable[[], list],
                curve: list[float] | Callable[[], list[float]] | None = None) -> None:
    """Append to metrics.jsonl (and curve.f64), on the run's writer thread when it has one; the first failure
    of a streak (a full disk) is reported, training goes on. `rows` and `curve` may be functions that make
    them, called where the write happens (off the training thread)."""
    def outcome(err) -> None:
        failing = getattr(run.folder, "metrics_failing", False)
        if err is not None and not failing:
            emit(Error(run.run_id, f"could not append to metrics.jsonl: {getattr(err, 'strerror', None) or err}; "
                                   "training goes on, rows are lost until it can write again"))
        run.folder.metrics_failing = err is not None

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
