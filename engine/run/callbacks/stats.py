"""The statistics callback: step statistics flushed as StepStats events and metrics.jsonl rows; divergence."""

from __future__ import annotations

import math
import time

import torch

from torchtui.engine.formatting import fmt_step
from torchtui.engine.protocol import DIVERGED, StepStats
from torchtui.engine.run.callbacks import Callback, Emit
from torchtui.engine.run.callbacks.events import append_rows, deliver
from torchtui.engine.run.callbacks.step_buffer import StepBuffer
from torchtui.engine.run.devices import autocast_context, memory_stats
from torchtui.engine.run.rank_clock import rank_row, rank_stats
from torchtui.engine.runs import step_line, step_row

FLUSH_STEPS = 500       # pull stats to the host at least every this many steps (bounds buffered memory) …
FLUSH_SECONDS = 0.1     # … or this often, whichever comes first
ACC_EVERY = 4           # train accuracy from every 4th batch (see StepBuffer)
# train.stats_every 0 (auto): per-layer statistics about this many times a second. A fixed step interval
# oversampled fast models (a small MLP at 2,000 steps/s spent 3 % of its time on 200 samples a second that
# no chart can show) and starved slow ones (a CNN at 5 steps/s got one every 2 s).
SAMPLES_PER_S = 10
AUTO_START = 10         # the interval until the first flush has measured the step rate


class StatsCallback(Callback):
    """Buffers step statistics on the device, flushes them as StepStats events and metrics.jsonl rows,
    and ends the run as diverged at the first non-finite loss or gradient."""

    def __init__(self, emit: Emit, layer_names: list[str], layer_of_param: list[int], every: int):
        self.emit = emit
        self.auto = every == 0
        self.buffer = StepBuffer(layer_of_param, layer_names, every or AUTO_START, acc_every=ACC_EVERY)
        self.wanted_every = self.buffer.every  # auto: the interval the step rate asks for (data parallel, rank 0
        self.lrs: list[float] = []             # proposes it at a sync point, where every rank takes it up)
        self.last_flush = time.perf_counter()
        self.last_loss: float | None = None    # the latest step's loss on the host (what a snapshot lists)

    def restart_clock(self) -> None:
        """Count time from now (after a pause): the buffer is empty, flushed before the wait."""
        self.buffer.since = self.last_flush = time.perf_counter()

    def on_before_optimizer_step(self, run):
        self.buffer.before_step(run.params, run.step + 1)
        # The lr this step uses, read before the optimizer steps and the schedule moves on (read after it, the
        # row of step s held step s+1's lr: off by up to the whole warm-up's slope).
        self.lrs.append(run.lr)

    def on_train_batch_end(self, run, loss, outputs, targets):
        self.buffer.after_step(run.params, run.step, loss, outputs if run.predict is not None else None, targets)
        if run.dist is None and (len(self.buffer.steps) >= FLUSH_STEPS or
                                 time.perf_counter() - self.last_flush >= FLUSH_SECONDS):
            self.on_flush(run)  # data parallel, the ranks flush together at their sync points (Controls)

    def on_flush(self, run):
        deliver(run)  # the writer thread's finished writes: CheckpointSaved, or a full disk's Error
        snapshots = run.session.snapshots
        if snapshots is not None and snapshots.due():  # checked here, ~10 times a second, not every step
            run.session.pending = True  # taken at the next point between two steps (Controls, the batch start)
        if run.dist is not None and not run.dist.lockstep:
            return  # a flush is a collective there: it waits for the next point every rank reaches
        if not len(self.buffer):
            return
        dist = run.dist
        steps = len(self.buffer)
        out = self.buffer.flush(run.predict, dist.all_reduce_sum if dist is not None else None,
                                rank_row(dist, steps, run.data_wait) if dist is not None else None)
        self.last_flush = time.perf_counter()
        if dist is not None and dist.leader:
            self.emit(rank_stats(run, out.extra))
        if self.auto and len(out.step) >= 10 and out.seconds > 0:
            self.wanted_every = sample_interval(len(out.step) / out.seconds)
            if run.dist is None:
                self.buffer.every = self.wanted_every
        lrs, self.lrs = self.lrs, []
        bad = out.bad_step is not None and not (run.scaler is not None and out.bad_what == "gradients")
        guard = run.session.guard  # the spike guard (train.guard) acts on a bad step instead of ending the run
        tripped = guard.check(run, out, bad) if guard is not None else None
        if bad and tripped is None:
            self._diverged(run, out)
        last_good = tripped if tripped is not None else out.bad_step if bad else None
        keep = out.step.index(last_good) + 1 if last_good in out.step else len(out.step)
        if keep:
            self.last_loss = out.loss[keep - 1]
        steps_done = out.step[-1] if out.step else run.step
        rate = out.samples / out.seconds if out.seconds > 0 else 0.0
        steps_left = run.total_steps - steps_done
        per_step = out.seconds / max(1, len(out.step))
        steps = out.step[:keep]
        last = steps[-1] if steps else run.step
        # Accuracy is sampled (see StepBuffer): only the steps it was computed on are sent.
        acc = [(s, c / n) for s, c, n in zip(out.acc_steps, out.correct, out.acc_sizes) if s <= last]
        alloc, reserved = memory_stats(run.device)
        waited, run.data_wait = run.data_wait, 0.0
        event = StepStats(
            run_id=run.run_id, step=steps, epoch=last / run.steps_per_epoch, loss=out.loss[:keep], lr=lrs[:keep],
            acc_steps=[s for s, _ in acc], acc=[a for _, a in acc],
            layer_steps=out.layer_steps, grad_norm=out.grad_norm, layer_grad_norm=out.layer_grad_norm,
            update_ratio=out.update_ratio,
            samples_per_s=rate, eta_s=steps_left * per_step if per_step > 0 and run.total_steps else None,
            progress=steps_done / run.total_steps if run.total_steps else 0.0, mem_allocated=alloc,
            mem_reserved=reserved,
            data_wait=min(1.0, waited / out.seconds) if run.data.streamed and out.seconds > 0 else None,
        )
        self.emit(event)
        # Formatted on the writer thread (a JSON line per step cost 0.4 ms a flush here): the event and its
        # lists are not changed after this point.
        per_epoch, names = run.steps_per_epoch, run.layer_names
        append_rows(run, self.emit, lambda: _step_rows(event, out.weight_norm, names, per_epoch),
                    lambda: [v for step, loss in zip(event.step, event.loss) for v in (step, step / per_epoch, loss)])

    def _diverged(self, run, out):
        where = f"; first non-finite gradients in layer '{out.bad_layer}'" if out.bad_layer else _blame(run)
        run.request_stop(DIVERGED, f"non-finite {out.bad_what} at step {fmt_step(out.bad_step)}{where}")


def sample_interval(steps_per_s: float) -> int:
    """Steps between per-layer samples for about SAMPLES_PER_S samples a second (train.stats_every 0)."""
    return max(1, min(FLUSH_STEPS, round(steps_per_s / SAMPLES_PER_S)))


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
    from torchtui.engine.models.build import param_groups_by_layer

    return param_groups_by_layer(run.plain_model)[1]


def _step_rows(event: StepStats, weight_norm: list, layers: list[str], steps_per_epoch: int) -> list[dict | str]:
    """metrics.jsonl rows of a flush. Most steps have only scalars: their line is formatted directly
    (a dict through json.dumps per step cost ~2 % of a small MLP's throughput); sampled steps with
    per-layer values (weight norms too, which no chart draws) go as dicts."""
    sampled = {s: i for i, s in enumerate(event.layer_steps)}
    acc_of = {s: a for s, a in zip(event.acc_steps, event.acc) if math.isfinite(a)}
    rows: list[dict | str] = []
    for i, step in enumerate(event.step):
        epoch = round(step / steps_per_epoch, 6)
        if step not in sampled:
            rows.append(step_line(step, epoch, event.loss[i], event.lr[i], acc_of.get(step)))
            continue
        j = sampled[step]
        layer_stats = {name: {"grad_norm": event.layer_grad_norm[j][k], "update_ratio": event.update_ratio[j][k],
                              "weight_norm": weight_norm[j][k]} for k, name in enumerate(layers)}
        rows.append(step_row(step, epoch, event.loss[i], event.lr[i], event.grad_norm[j],
                                          acc_of.get(step), layer_stats))
    return rows
