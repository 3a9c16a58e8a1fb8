"""Loop extension points: the Callback hooks (Keras/Lightning names), their dispatch, and metric comparisons."""

from __future__ import annotations

import math
from collections.abc import Callable

from torchtui.engine.config import MAXIMISED

Emit = Callable[[object], None]


class Callback:
    """Do-nothing hooks (Keras/Lightning names); subclasses override what they need."""

    def on_fit_start(self, run): ...
    def on_train_batch_start(self, run): ...
    def on_before_optimizer_step(self, run): ...
    def on_train_batch_end(self, run, loss, outputs, targets): ...
    def on_flush(self, run): ...
    def on_validation_end(self, run, split: str, metrics: dict): ...
    def on_train_epoch_end(self, run): ...
    def on_fit_end(self, run): ...

    def state_dict(self) -> dict:
        """What a checkpoint must keep for this callback to resume (nothing by default)."""
        return {}

    def load_state_dict(self, state: dict) -> None: ...


HOOKS = [name for name in vars(Callback) if name.startswith("on_")]


class CallbackList:
    """Calls each hook on every callback, in order: `callbacks.on_flush(run)` reaches all of them."""

    def __init__(self, callbacks: list[Callback]):
        self.callbacks = list(callbacks)
        for hook in HOOKS:
            setattr(self, hook, self._dispatch(hook))

    def _dispatch(self, hook: str):
        # Only callbacks that override the hook: three hooks run every step, most callbacks need none.
        bound = [getattr(cb, hook) for cb in self.callbacks
                 if getattr(type(cb), hook) is not getattr(Callback, hook) or hook in vars(cb)]
        if len(bound) == 1:  # the per-step hooks have one taker each: called directly, a frame less a step
            return bound[0]

        def call(*args):
            for method in bound:
                method(*args)
        call.__name__ = hook
        return call


def improved(value: float, best: float | None, mode: str, min_delta: float = 0.0) -> bool:
    """Whether `value` beats `best` by more than min_delta in the direction `mode` (min or max)."""
    if value is None or not math.isfinite(value):
        return False
    if best is None:
        return True
    return value < best - min_delta if mode == "min" else value > best + min_delta


def metric_mode(metric: str, mode: str = "auto") -> str:
    return mode if mode != "auto" else ("max" if metric in MAXIMISED else "min")
