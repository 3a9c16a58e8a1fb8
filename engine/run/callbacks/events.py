"""The evaluation events callback, and appending rows to metrics.jsonl."""

from __future__ import annotations

from torchtui.engine.protocol import Error, EvalResult
from torchtui.engine.run.callbacks import Callback, Emit


def append_rows(run, emit: Emit, rows: list, curve: list[float] | None = None) -> None:
    """Append to metrics.jsonl (and curve.f64); the first failure of a streak (a full disk) is reported,
    training goes on."""
    err = run.folder.append_metrics(rows, curve)
    failing = getattr(run.folder, "metrics_failing", False)
    if err is not None and not failing:
        emit(Error(run.run_id, f"could not append to metrics.jsonl: {err.strerror or err}; training goes on, "
                               "rows are lost until it can write again"))
    run.folder.metrics_failing = err is not None


class EvalEvents(Callback):
    """Emits each evaluation and appends it to metrics.jsonl."""

    def __init__(self, emit: Emit):
        self.emit = emit

    def on_validation_end(self, run, split, metrics):
        scalars = {k: v for k, v in metrics.items() if k not in ("confusion", "dead_relu")}
        self.emit(EvalResult(run.run_id, split, run.step, run.epoch, scalars,
                             metrics.get("confusion"), metrics.get("dead_relu", {})))
        append_rows(run, self.emit, [{"type": "eval", "split": split, "step": run.step, "epoch": run.epoch,
                                    **scalars, "dead_relu": metrics.get("dead_relu", {})}])
