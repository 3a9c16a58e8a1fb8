"""The early-stopping callback: ends a run whose val metric stopped improving."""

from __future__ import annotations

from torchtui.engine.protocol import FINISHED
from torchtui.engine.run.callbacks import Callback, improved, metric_mode


class EarlyStopping(Callback):
    """Stops the run when a val metric has not improved for `patience` evaluations."""

    def __init__(self, metric: str, mode: str, patience: int, min_delta: float):
        self.metric, self.mode = metric, metric_mode(metric, mode)
        self.patience, self.min_delta = patience, min_delta
        self.best: float | None = None
        self.wait = 0

    def on_validation_end(self, run, split, metrics):
        if split != "val" or self.metric not in metrics:
            return
        if improved(metrics[self.metric], self.best, self.mode, self.min_delta):
            self.best, self.wait = metrics[self.metric], 0
            return
        self.wait += 1
        if self.wait >= self.patience:
            run.request_stop(FINISHED, f"early stop: val {self.metric} did not improve for {self.wait} evaluations "
                                       f"(best {self.best:.4g})")

    def state_dict(self) -> dict:
        return {"best": self.best, "wait": self.wait}

    def load_state_dict(self, state: dict) -> None:
        self.best, self.wait = state.get("best"), state.get("wait", 0)
