"""Loop extension points: the Callback hooks, and the stats, checkpoint, early-stop and event callbacks."""

from __future__ import annotations

import copy
import math
import time

import torch
from typing import Callable

from . import checkpoint as ckpt
from .config import MAXIMISED
from .devices import autocast_context, memory_stats
from .protocol import DIVERGED, FINISHED, CheckpointSaved, Error, EvalResult, StepStats
from .stats import StepBuffer

Emit = Callable[[object], None]
FLUSH_STEPS = 500       # pull stats to the host at least every this many steps (bounds buffered memory) …
FLUSH_SECONDS = 0.1     # … or this often, whichever comes first
ACC_EVERY = 4           # train accuracy from every 4th batch (see StepBuffer)


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

        def call(*args):
            for method in bound:
                method(*args)
        call.__name__ = hook
        return call


class StatsCallback(Callback):
    """Buffers step statistics on the device, flushes them as StepStats events and metrics.jsonl rows,
    and ends the run as diverged at the first non-finite loss or gradient."""

    def __init__(self, emit: Emit, layer_names: list[str], layer_of_param: list[int], every: int):
        self.emit = emit
        self.buffer = StepBuffer(layer_of_param, layer_names, every, acc_every=ACC_EVERY)
        self.lrs: list[float] = []
        self.last_flush = time.perf_counter()

    def restart_clock(self) -> None:
        """Count time from now (after a pause): the buffer is empty, flushed before the wait."""
        self.buffer.since = self.last_flush = time.perf_counter()

    def on_before_optimizer_step(self, run):
        self.buffer.before_step(run.params, run.step + 1)

    def on_train_batch_end(self, run, loss, outputs, targets):
        self.buffer.after_step(run.params, run.step, loss, outputs if run.predict is not None else None, targets)
        self.lrs.append(run.lr)
        if len(self.buffer) >= FLUSH_STEPS or time.perf_counter() - self.last_flush >= FLUSH_SECONDS:
            self.on_flush(run)

    def on_flush(self, run):
        if not len(self.buffer):
            return
        out = self.buffer.flush(run.predict)
        self.last_flush = time.perf_counter()
        lrs, self.lrs = self.lrs, []
        bad = out.bad_step is not None and not (run.scaler is not None and out.bad_what == "gradients")
        if bad:
            self._diverged(run, out)
        keep = len(out.step) if not bad else out.step.index(out.bad_step) + 1
        steps_done = out.step[-1] if out.step else run.step
        rate = out.samples / out.seconds if out.seconds > 0 else 0.0
        steps_left = run.total_steps - steps_done
        per_step = out.seconds / max(1, len(out.step))
        # Accuracy is sampled (see StepBuffer): NaN on the steps in between, as for grad_norm.
        by_step = {s: c / n for s, c, n in zip(out.acc_steps, out.correct, out.acc_sizes)}
        acc = [by_step.get(s, math.nan) for s in out.step[:keep]] if run.predict is not None else []
        alloc, reserved = memory_stats(run.device)
        event = StepStats(
            run_id=run.run_id, step=out.step[:keep],
            epoch=[s / run.steps_per_epoch for s in out.step[:keep]],
            loss=out.loss[:keep], lr=lrs[:keep], grad_norm=out.grad_norm[:keep], acc=acc,
            layer_steps=out.layer_steps, layer_grad_norm=out.layer_grad_norm,
            update_ratio=out.update_ratio, weight_norm=out.weight_norm,
            samples_per_s=rate, eta_s=steps_left * per_step if per_step > 0 else None,
            progress=steps_done / max(1, run.total_steps), mem_allocated=alloc, mem_reserved=reserved,
        )
        self.emit(event)
        append_rows(run, self.emit, _step_rows(event, run.layer_names))

    def _diverged(self, run, out):
        where = f"; first non-finite gradients in layer '{out.bad_layer}'" if out.bad_layer else _blame(run)
        run.request_stop(DIVERGED, f"non-finite {out.bad_what} at step {out.bad_step}{where}")


def _blame(run) -> str:
    """Which layer a divergence points at: the first (in the model's order) with inf or NaN gradients,
    else the one with the largest gradients (weights grown so large the loss overflows).

    Checked once, when a run diverges. The step's own gradients are gone by then (zeroed after the
    optimizer step), so they are recomputed on the latest batch with the weights as they are now.
    """
    groups = _groups(run)
    if run.last_batch is not None and all(p.grad is None for group in groups for p in group):
        xb, yb = run.last_batch
        try:
            with torch.enable_grad(), autocast_context(run.device, run.amp_dtype):
                loss = run.loss_fn(run.model(xb), yb)
            loss.backward()
        except RuntimeError:
            return ""
    try:
        norms = []
        for name, group in zip(run.layer_names, groups):
            grads = [p.grad.detach().double() for p in group if p.grad is not None]
            if any(not bool(torch.isfinite(g).all()) for g in grads):
                return f"; first non-finite gradients in layer '{name}'"
            norms.append((float(torch.linalg.vector_norm(torch.stack([g.norm() for g in grads]))) if grads else 0.0,
                          name))
        if norms and max(norms)[0] > 0:
            norm, name = max(norms)
            return f"; largest gradients in layer '{name}' (norm {norm:.3g})"
        return ""
    finally:
        run.optimizer.zero_grad(set_to_none=True)


def _groups(run):
    from .models import param_groups_by_layer

    return param_groups_by_layer(getattr(run.model, "_orig_mod", run.model))[1]


def append_rows(run, emit: Emit, rows: list) -> None:
    """Append to metrics.jsonl; the first failure of a streak (a full disk) is reported, training goes on."""
    err = run.folder.append_metrics(rows)
    failing = getattr(run.folder, "metrics_failing", False)
    if err is not None and not failing:
        emit(Error(run.run_id, f"could not append to metrics.jsonl: {err.strerror or err}; training goes on, "
                               "rows are lost until it can write again"))
    run.folder.metrics_failing = err is not None


def _step_rows(event: StepStats, layers: list[str]) -> list[dict | str]:
    """metrics.jsonl rows of a flush. Most steps have only scalars: their line is formatted directly
    (a dict through json.dumps per step cost ~2 % of a small MLP's throughput); sampled steps with
    per-layer values go as dicts."""
    sampled = {s: i for i, s in enumerate(event.layer_steps)}
    rows: list[dict | str] = []
    for i, step in enumerate(event.step):
        grad = event.grad_norm[i]
        acc = f', "acc": {_num(event.acc[i])}' if event.acc and math.isfinite(event.acc[i]) else ""
        if step not in sampled:
            rows.append(f'{{"type": "step", "step": {step}, "epoch": {_num(round(event.epoch[i], 6))}, '
                        f'"loss": {_num(event.loss[i])}, "lr": {_num(event.lr[i])}'
                        + (f', "grad_norm": {_num(grad)}' if math.isfinite(grad) else "") + acc + "}")
            continue
        j = sampled[step]
        row = {"type": "step", "step": step, "epoch": round(event.epoch[i], 6), "loss": event.loss[i],
               "lr": event.lr[i], "grad_norm": grad}
        if event.acc and math.isfinite(event.acc[i]):
            row["acc"] = event.acc[i]
        row["layers"] = {name: {"grad_norm": event.layer_grad_norm[j][k], "update_ratio": event.update_ratio[j][k],
                                "weight_norm": event.weight_norm[j][k]} for k, name in enumerate(layers)}
        rows.append(row)
    return rows


def _num(value: float) -> str:
    """A number as JSON: repr of a finite float is valid JSON; NaN and inf are not, so they become null."""
    return repr(float(value)) if math.isfinite(value) else "null"


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


def improved(value: float, best: float | None, mode: str, min_delta: float = 0.0) -> bool:
    """Whether `value` beats `best` by more than min_delta in the direction `mode` (min or max)."""
    if value is None or not math.isfinite(value):
        return False
    if best is None:
        return True
    return value < best - min_delta if mode == "min" else value > best + min_delta


def metric_mode(metric: str, mode: str = "auto") -> str:
    return mode if mode != "auto" else ("max" if metric in MAXIMISED else "min")


class Checkpoints(Callback):
    """Writes last.pt and best.pt atomically, each at most every `every` seconds (train.checkpoint_every;
    0 = at every epoch end), and always at the end.

    Short epochs would otherwise spend more time serialising and fsyncing than training. An improved
    best is snapshotted in memory at once (a tensor copy) and written when the interval allows, so
    best.pt always holds the best weights by the end; a kill loses at most `every` seconds of either.
    A write that fails (a full disk) is reported and training goes on; the previous file stays whole.
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
        if kind == "best":
            self.pending_best = None
        self._write(run, "last" if kind == "manual" else kind, kind, self.make_payload(run), run.step, run.epoch)

    def _write(self, run, name: str, kind: str, payload: dict, step: int, epoch: int) -> None:
        path = run.folder.checkpoint_path(name)
        try:
            ckpt.save_checkpoint(path, payload)
        except OSError as err:
            self.written[name] = time.monotonic()  # try again at the next interval, not every step
            previous = "the previous one is intact" if path.exists() else "there is none yet"
            self.emit(Error(run.run_id, f"could not write {path.name} at step {step}: {err.strerror or err}; "
                                        f"{previous}, training goes on"))
            return
        self.written[name] = time.monotonic()
        if name == "last":
            self.saved_step = step
        self.emit(CheckpointSaved(run.run_id, str(path), kind, step, epoch))

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
                self.pending_best = (copy.deepcopy(self.make_payload(run)), run.step, run.epoch)

    def on_train_epoch_end(self, run):
        if self._due("best"):
            self._write_pending_best(run)
        if self._due("last"):
            self.save(run, "last")

    def on_fit_end(self, run):
        self._write_pending_best(run)  # it was finite when it was the best, whatever happened later
        if run.end_state != FINISHED or run.batch_in_epoch or self.saved_step != run.step:
            self.save(run, "last")


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
