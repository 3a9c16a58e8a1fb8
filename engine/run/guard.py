"""The spike guard (train.guard): a bad step caught from the statistics already pulled at each flush, then acted on.

Detection adds no host sync: it reads the flush's losses (every step) and sampled global gradient norms
(StepBuffer, about 10 a second), which the statistics callback pulls to the host in one transfer anyway. A step
trips it when its loss or gradients are non-finite, or its loss (or sampled gradient norm) is a spike: a robust
z-score, (value − median) / (1.4826 · MAD) over the last WINDOW values, above `train.guard_z`, that at least
doubles the median and climbs all the way back to the run's early level (the median of its first
MIN_WINDOW values). Late in a run the loss sits near zero with a tiny MAD, so a z-score alone called noise a
spike: the circles preset's 0.005 → 0.066 blips tripped four rollbacks and ended it as diverged, and a quarter
or half of the way back, one noisy moons batch (0.28-0.3 against a median of 0.07) paused the app's run. A gradient-norm
spike must be 100x the median (GRAD_RATIO); one at a step that was not sampled shows a step later, in its loss.
A resumed run's guard takes where the run began from the checkpoint (Run.loss_at_start); one from a checkpoint
that has none never saw it, and there a loss spike must be 10x the median (RESUMED_RATIO).

What it does, at the next point between two steps (Controls): `stop` ends the run as diverged; `rollback` goes
back to the newest snapshot before the bad step, skips that step's batches from then on, and records it
(a "guard" row in metrics.jsonl, RolledBack to clients); `ask` pauses and waits for a GuardAnswer (rollback,
halve_lr: the rollback then lr ÷2, continue). More than `train.guard_max_rollbacks` rollbacks within
ROLLBACK_WINDOW steps stop the run as diverged: it keeps meeting spikes, so going back does not help.
"""

from __future__ import annotations

import copy
import math
import statistics
from collections import deque
from dataclasses import dataclass, field

import torch

from torchtui.engine import protocol as p
from torchtui.engine.data.batches import epoch_permutation
from torchtui.engine.formatting import fmt_step
from torchtui.engine.run.callbacks import Callback
from torchtui.engine.run.callbacks.events import append_rows

WINDOW = 200           # recent values the median and MAD are taken over
MIN_WINDOW = 20        # no spike is called before this many values are known
SPIKE_RATIO = 1.0      # … and a spike is at least this share of |median| above the median (doubles it) …
SPIKE_SPAN = 1.0       # … and this share of the way from the median back up to where the run began
RESUMED_RATIO = 9.0    # a run resumed from a checkpoint has no early level here: its spike is 10x the median
GRAD_RATIO = 99.0      # a gradient-norm spike is at least 100x the median: benign norms swing 10-20x (the circles
                       # preset at its step 400: 0.05 -> 0.8, z 17); an exploding step is orders of magnitude
ROLLBACK_WINDOW = 1000  # steps: more than train.guard_max_rollbacks rollbacks within this many stop the run
WORST = 8              # samples shown of the offending batch


@dataclass
class Trip:
    """A bad step waiting to be acted on."""
    step: int
    kind: str            # nonfinite | loss_spike | grad_spike
    reason: str
    value: float | None
    batches: list = field(default_factory=list)
    layer: str = ""      # nonfinite gradients: "; first non-finite gradients in layer '…'" (said last, as a divergence)
    asked: bool = False  # ask: GuardTripped sent, the run paused, waiting for the answer


def resolve_mode(config, interactive: bool, distributed: bool) -> str:
    """train.guard as it applies: auto is ask in the app, rollback headless, off for data-parallel runs (which take
    no snapshots); rollback and ask need snapshots (train.snapshots), else they stop."""
    mode = config.train.guard
    if mode == "auto":
        mode = "off" if distributed else ("ask" if interactive else "rollback")
    if mode in ("ask", "rollback") and not config.train.snapshots:
        mode = "stop"
    return mode


class Guard(Callback):
    """Watches each flush for a bad step (check) and acts on it between two steps (act). As a callback it also
    trips on a non-finite val loss (weights gone non-finite in a step whose own loss was still finite), and a trip
    still waiting when training ends (no step left to roll back at) ends the run as diverged."""

    def __init__(self, mode: str, z: float, max_rollbacks: int):
        self.mode, self.z, self.max_rollbacks = mode, z, max_rollbacks
        self.losses, self.norms = Window(), Window()
        self.trip: Trip | None = None
        self.rollbacks: list[int] = []   # the bad steps of the rollbacks so far

    # ------------------------------------------------------------------ detection (at a flush)

    def check(self, run, out, nonfinite: bool) -> int | None:
        """Look at a flush's host values; returns the bad step when one tripped (the steps after it are not
        reported), else None. `nonfinite`: the flush's first non-finite step counts (not fp16's skipped steps)."""
        if self.trip is not None:
            return self.trip.step  # the one before is still waiting: nothing after it counts
        found = None
        if nonfinite and out.bad_step is not None:
            found = (out.bad_step, "nonfinite", f"non-finite {out.bad_what} at step {fmt_step(out.bad_step)}", None)
        if self.losses.early is None and run.loss_at_start is not None:  # resumed: where the run began, saved
            self.losses.early, self.losses.first_step = run.loss_at_start, 0
        spike = _spike(self.losses, out.step, out.loss, self.z, found[0] if found else None)
        if run.loss_at_start is None and self.losses.early is not None and self.losses.first_step <= MIN_WINDOW:
            run.loss_at_start = self.losses.early  # kept in checkpoints
        if spike is not None:
            step, value, z = spike
            found = (step, "loss_spike", f"loss spike at step {fmt_step(step)}: {value:.4g} (z {z:.1f})", value)
        norm = _spike(self.norms, out.layer_steps, out.grad_norm, self.z, found[0] if found else None, GRAD_RATIO)
        if norm is not None:
            step, value, z = norm
            found = (step, "grad_spike", f"gradient-norm spike at step {fmt_step(step)}: {value:.4g} (z {z:.1f})",
                     value)
        if found is None:
            return None
        self.trip = Trip(*found)
        if self.trip.kind == "nonfinite" and out.bad_layer:
            self.trip.layer = f"; first non-finite gradients in layer '{out.bad_layer}'"
            self.trip.reason += self.trip.layer
        step = self.trip.step
        if self.mode == "stop":  # at once, as a divergence: nothing (an epoch's checkpoint) comes after it
            self._stop(run, self.trip, "")
        else:
            run.session.pending = True
        return step

    def on_validation_end(self, run, split, metrics):
        loss = metrics.get("loss")
        if split == "val" and self.trip is None and isinstance(loss, float) and not math.isfinite(loss):
            self.trip = Trip(run.step, "nonfinite", f"non-finite val loss at step {fmt_step(run.step)}", None)
            if self.mode == "stop":
                self._stop(run, self.trip, "")
            else:
                run.session.pending = True

    def on_fit_end(self, run):
        if self.trip is not None and not run.should_stop:
            self._stop(run, self.trip, ": training ended before it could roll back")

    # ------------------------------------------------------------------ action (between two steps)

    def act(self, run) -> None:
        """Do what the mode says about the waiting trip (Controls calls this between two steps)."""
        trip = self.trip
        if trip is None or trip.asked:
            return
        snap = run.session.snapshots.ring.pick(before=trip.step) if run.session.snapshots else None
        trip.batches = step_batches(run, snap, trip.step) if snap is not None else []
        if self.mode == "stop" or (snap is None and self.mode == "rollback"):
            self._stop(run, trip, "" if snap is not None or self.mode == "stop" else ": no snapshot before it")
        elif self.mode == "rollback":
            self.rollback(run, "rollback")
        else:  # ask: pause and wait for the answer
            trip.asked = True
            self._tell(run, trip, "ask", snap)
            if run.session.pause():
                run.callbacks.on_flush(run)
            run.session.set_state(p.PAUSED, run.run_id, f"guard: {trip.reason}")

    def answer(self, run, action: str) -> None:
        """The GuardAnswer to an ask: rollback, halve_lr or continue; the run goes on."""
        trip = self.trip
        if trip is None or not trip.asked:
            run.session.emit(p.Log(run.run_id, "warning", "guard: nothing to answer (no spike is waiting)"))
            return
        if action not in ("rollback", "halve_lr", "continue"):
            run.session.emit(p.Error(run.run_id, f"guard: unknown answer {action!r} (rollback, halve_lr or continue)"))
            return
        if action == "continue":
            self.trip = None
            _record(run, trip.step, "continue", trip)
        else:
            self.rollback(run, action)
        if run.session.resume():
            run.session.set_state(p.RUNNING, run.run_id)

    def rollback(self, run, action: str) -> None:
        """Back to the newest snapshot before the bad step, its batches skipped from now on; halve_lr: lr ÷2 too."""
        from torchtui.engine.run.snapshots import restore
        from torchtui.engine.run.steering import apply_live_change

        trip, self.trip = self.trip, None
        session = run.session
        snap = session.snapshots.ring.pick(before=trip.step) if session.snapshots else None
        if snap is None:
            self._stop(run, trip, ": no snapshot before it")
            return
        self.rollbacks = [s for s in self.rollbacks if s > trip.step - ROLLBACK_WINDOW] + [trip.step]
        if len(self.rollbacks) > self.max_rollbacks:
            self._stop(run, trip, f": it came back after {self.max_rollbacks} rollbacks within {ROLLBACK_WINDOW:,} "
                                  "steps, train.guard_max_rollbacks")
            return
        if self.mode == "rollback":
            self._tell(run, trip, "rollback", snap)
        run.callbacks.on_flush(run)  # the steps before this point reported first, then dropped after the snapshot
        self.trip = None
        from_step = run.step
        restore(run, snap)
        session.snapshots.ring.drop_after(snap.step)
        run.skip.update(tuple(b) for b in trip.batches)
        _truncate(run, snap.step)
        _record(run, snap.step, action, trip)
        changes = {}
        if action == "halve_lr":
            if apply_live_change(run, p.SetHparams(lr_scale=0.5)):
                changes = {"lr": [run.lr * 2, run.lr]}
        session.emit(p.RolledBack(run.run_id, snap.step, trip.step, trip.reason, action,
                                  [list(b) for b in trip.batches], changes))
        session.emit(p.Log(run.run_id, "warning", f"guard: {trip.reason}; rolled back from step {fmt_step(from_step)} "
                                                  f"to {fmt_step(snap.step)}, skipping {len(trip.batches)} batch(es)"
                                                  + (", lr ÷2" if changes else "")))

    def _stop(self, run, trip: Trip, why: str) -> None:
        """End the run as diverged, its reason as a divergence says it (the step, the layer to blame)."""
        from torchtui.engine.run.callbacks.stats import _blame

        self.trip = None
        self._tell(run, trip, "stop", None)
        _record(run, trip.step, "stop", trip)
        base = trip.reason[:len(trip.reason) - len(trip.layer)] if trip.layer else trip.reason
        blame = trip.layer or (_blame(run) if trip.kind == "nonfinite" else "")
        run.request_stop(p.DIVERGED, f"{base}{why and f' (guard{why})'}{blame}")

    def _tell(self, run, trip: Trip, action: str, snap) -> None:
        samples, worst = offending(run, snap, trip.batches)
        run.session.emit(p.GuardTripped(run.run_id, trip.step, trip.kind, trip.reason, action, trip.value,
                                        [list(b) for b in trip.batches], samples, worst,
                                        snap.step if snap is not None else None))


class Window(deque):
    """The recent values of one statistic, and the median of its first MIN_WINDOW (where the run began)."""

    def __init__(self):
        super().__init__(maxlen=WINDOW)
        self.early: float | None = None
        self.first_step: int | None = None  # past MIN_WINDOW: a resumed run, whose beginning this never saw


def _spike(window: Window, steps: list, values: list, z: float, before: int | None, ratio: float = SPIKE_RATIO):
    """The first (step, value, z) of `values` that is a spike against `window` (then extended by the rest,
    up to the spike); only steps before `before` count. The median and MAD are taken once per flush, and again
    where a run's first flush fills the window (many steps at once: those after the first MIN_WINDOW count)."""
    if not values:
        return None
    if window.first_step is None:
        window.first_step = steps[0]
    limits = _limits(window, ratio) if len(window) >= MIN_WINDOW else None
    for step, value in zip(steps, values):
        if before is not None and step >= before:
            return None
        if not math.isfinite(value):
            return None  # non-finite values are the other check's
        if limits is not None:
            median, scale, floor = limits
            score = (value - median) / scale
            if score > z and value > floor:
                return step, value, score
        window.append(value)
        if limits is None and len(window) >= MIN_WINDOW and window.first_step <= MIN_WINDOW:
            # A run's first flush: judged from its 21st value on. Not a resumed run's, which has no level of where
            # it began to judge by (its floor is RESUMED_RATIO): its first judgement waits for the next flush.
            limits = _limits(window, ratio)
    return None


def _limits(window: Window, ratio: float) -> tuple[float, float, float]:
    """The window's median, its scale (the MAD, floored) and the floor a spike must also pass."""
    window.early = statistics.median(list(window)[:MIN_WINDOW]) if window.early is None else window.early
    median = statistics.median(window)
    mad = statistics.median(abs(v - median) for v in window) * 1.4826
    scale = max(mad, abs(median) * 1e-3, 1e-12)
    if window.first_step > MIN_WINDOW:  # resumed: its first values here are not where the run began
        floor = median + max(ratio, RESUMED_RATIO) * abs(median)
    else:
        floor = median + max(ratio * abs(median), SPIKE_SPAN * (window.early - median))
    return median, scale, floor


def step_batches(run, snap, step: int) -> list[tuple[int, int]]:
    """The (epoch, batch) micro-batches optimizer step `step` trained on, walking the loop's order from the
    snapshot's position (skipped batches skipped, accumulate batches a step, a short last group per epoch)."""
    state = snap.state
    epoch, batch, done = state["epoch"], state["batch_in_epoch"], state["step"]
    per_epoch, accumulate = run.batches_per_epoch, run.config.train.accumulate
    group: list[tuple[int, int]] = []
    while done < step and per_epoch:
        if (epoch, batch) not in run.skip:
            group.append((epoch, batch))
            if (batch + 1) % accumulate == 0 or batch + 1 == per_epoch:
                done += 1
                if done == step:
                    return group
                group = []
        batch += 1
        if batch == per_epoch:
            epoch, batch = epoch + 1, 0
    return group


def offending(run, snap, batches: list) -> tuple[list, list]:
    """The rows of the train split in `batches`, and the WORST highest per-sample losses among them, computed with
    the snapshot's weights (the model as the bad step found it); ([], []) where that cannot be known."""
    if not batches or snap is None or run.data.streamed:
        return [], []
    cfg = run.config.train
    rng = torch.get_rng_state()  # augmentation draws from it: the run's own draws stay as they were
    try:
        model = copy.deepcopy(run.plain_model)
        snap.ready()
        model.load_state_dict(snap.state["model"])
        model.eval()
        rows, worst = [], []
        for epoch, batch in batches:
            perm = (torch.arange(len(run.data.train), device=run.device) if cfg.overfit_batches
                    else epoch_permutation(len(run.data.train), cfg.seed, epoch, run.device))
            size = cfg.batch_size or len(run.data.train)
            index = perm[batch * size:(batch + 1) * size].tolist()
            xb, yb = next(iter(run.data.train_batches(perm, cfg.batch_size, start_batch=batch)))
            with torch.no_grad():
                out = model(xb)
                losses = [float(run.loss_fn(out[i:i + 1], yb[i:i + 1])) for i in range(len(yb))]
            rows += index
            worst += [[r, v if math.isfinite(v) else None] for r, v in zip(index, losses)]
        worst.sort(key=lambda rv: -math.inf if rv[1] is None else -rv[1])
        return rows, worst[:WORST]
    except Exception:  # noqa: BLE001 - a model or loss that cannot take one row: the batch is still named
        return [], []
    finally:
        torch.set_rng_state(rng)


def _truncate(run, step: int) -> None:
    """metrics.jsonl without the rows after `step`, in order with the writes queued before (writer thread)."""
    def truncate():
        run.folder.truncate_metrics_after(step)

    def outcome(err) -> None:
        if isinstance(err, Exception):
            run.session.emit(p.Log(run.run_id, "warning", f"guard: metrics.jsonl keeps the rows after step "
                                                          f"{fmt_step(step)} ({err})"))

    if run.writer is None:
        try:
            truncate()
        except Exception as err:  # noqa: BLE001 - damaged lines: said, the run goes on
            outcome(err)
    else:
        run.writer.submit(outcome, truncate)


def _record(run, step: int, action: str, trip: Trip) -> None:
    row = {"type": "guard", "step": step, "action": action, "tripped": trip.step, "kind": trip.kind,
           "reason": trip.reason, "skipped": [list(b) for b in trip.batches] if action in ("rollback", "halve_lr")
           else []}
    append_rows(run, run.session.emit, [row])
