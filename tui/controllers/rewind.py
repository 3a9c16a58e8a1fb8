"""Rewind and the spike guard in the app (issue 27): `w` lists the active run's snapshots and branches the run from
the one picked (with an lr change if asked); after the branch the charts show the parent's curve up to the branch
point, then the branch. A guard that trips with train.guard ask pauses the run and asks what to do (GuardScreen).
"""

from __future__ import annotations

import dataclasses
import time

from torchtui.engine import protocol as p
from torchtui.engine.history.series import Series
from torchtui.tui.controllers import Controller

CARRIED = ("train_loss", "train_loss_smooth", "train_acc", "train_acc_smooth", "lr", "grad_norm")
ALL_POINTS = 1 << 20  # downsample buckets that keep every point a series still holds
MOOT = "moot"  # the guard's question closed because the run went on or ended without this app's answer


class RewindController(Controller):
    """Owns the open RewindScreen, the snapshot steps the loss chart marks, and a branch's carried-over past."""

    HANDLES = {p.SnapshotsListed: "on_listed", p.Branched: "on_branched", p.RunStarted: "on_run_started",
               p.History: "on_history", p.HparamsChanged: "on_changed", p.StepStats: "on_steps",
               p.RolledBack: "on_rolled_back", p.Error: "on_error"}

    def __init__(self, app):
        super().__init__(app)
        self.screen = None
        self.asked_at: float | None = None  # when Enter sent the Rewind: the log says how long the branch took
        self.carry: tuple[p.Branched, dict] | None = None  # the parent's series up to the branch point

    def open(self) -> None:
        from torchtui.tui.screens.rewind import RewindScreen

        started = self.history.started
        if started is None or self.history.state not in p.ACTIVE_STATES:
            self.notify("w rewinds a running or paused run to one of its snapshots; press space to start")
            return
        self.screen = RewindScreen(started.run_id, self.app.setup.config.train.lr, self.check_lr, self.highlight)
        self.app.push_screen(self.screen, self.rewind)
        self.bridge.request(p.ListSnapshots)

    def check_lr(self, lr: float) -> str:
        """A typed lr's problem, as the setup's own checks word it (the Hparams pane's), or ""."""
        from torchtui.engine.config import validate

        config = self.app.setup.config
        problems = validate(dataclasses.replace(config, train=dataclasses.replace(config.train, lr=lr)))
        return next((line for line in problems if line.startswith("train.lr")), "")

    def highlight(self, step: int | None) -> None:
        """The loss chart marks the snapshot under the cursor (None: the screen closed)."""
        chart = self.app.charts.get("loss-chart")
        if chart is not None and getattr(chart, "chosen_step", None) != step:
            chart.chosen_step = step
            chart.mark_dirty()
            self.app.scheduler.urgent("loss-chart")

    def on_listed(self, event: p.SnapshotsListed) -> None:
        if not self.bridge.is_current(event):
            return
        chart = self.app.charts.get("loss-chart")
        if chart is not None:
            chart.snapshot_steps = [s["step"] for s in event.snapshots if s.get("run_id") in (None, event.run_id)]
            chart.mark_dirty()
        if self.screen is not None:
            self.screen.show(event)

    def rewind(self, answer) -> None:
        self.screen = None
        if not answer:
            return
        step, changes = answer
        if self.history.state not in p.ACTIVE_STATES:
            self.notify("the run ended before the rewind: nothing to branch", severity="warning")
            return
        from torchtui.tui.screens.rewind import lr_change_text

        self.asked_at = time.perf_counter()
        self.bridge.request(p.Rewind, step=step, changes=changes, run_id=self.history.run_id)
        self.log("info", f"rewinding {self.history.run_id} to step {step:,} with "
                         f"{lr_change_text(changes, self.app.setup.config.train.lr)}…")

    # ------------------------------------------------------------------ the branch

    def on_branched(self, event: p.Branched) -> None:
        """Before the branch's RunStarted clears the charts: keep the parent's curves up to the branch point."""
        changes = asked_text(event.changes)
        took = f" in {time.perf_counter() - self.asked_at:.1f} s" if self.asked_at is not None else ""
        self.log("change", f"branched {event.branch_id} from {event.parent_id} at step {event.step:,}"
                           + (f" ({changes})" if changes else "") + f"{took}: the app follows the branch")
        if self.history.run_id == event.run_id:
            self.carry = (event, self._past(event.step))

    def _past(self, step: int) -> dict:
        h = self.history
        out = {name: _upto(getattr(h, name), step) for name in CARRIED}
        out["val"] = {name: _upto(series, step) for name, series in h.val.items()}
        out["markers"] = [m for m in h.markers if m[0] <= step]
        return out

    def on_run_started(self, event: p.RunStarted) -> None:
        if self.carry is not None and event.run_id != self.carry[0].branch_id:
            self.carry = None  # another run: the branch's past is no longer the one drawn
        chart = self.app.charts.get("loss-chart")
        if chart is not None:  # a branch keeps its parent's snapshots up to the branch point; a new run has none
            step = self.carry[0].step if self.carry is not None else -1
            chart.snapshot_steps = [s for s in getattr(chart, "snapshot_steps", []) if s <= step]
        self._fill(event.run_id)

    def on_steps(self, event: p.StepStats) -> None:
        """The branch's first step: the log says how long it took from Enter (the rewind's latency)."""
        if self.asked_at is None or self.carry is None or event.run_id != self.carry[0].branch_id or not event.step:
            return
        self.log("info", f"the branch's first step came {time.perf_counter() - self.asked_at:.1f} s after Enter")
        self.asked_at = None

    def on_changed(self, event: p.HparamsChanged) -> None:
        """The branch's own live change at its branch point is the rewind marker's: one label there, not two."""
        if self.carry is None or event.run_id != self.carry[0].branch_id or event.step != self.carry[0].step:
            return
        h = self.history
        ours = [m for m in h.markers if m[0] == event.step and m[1].startswith("rewind")]
        if ours:
            h.markers = [m for m in h.markers if m[0] != event.step or m[1].startswith("rewind")]

    def on_history(self, event: p.History) -> None:
        self._fill(event.run_id)  # a run server's History of the branch replaced ours: its past goes in again

    def _fill(self, run_id: str) -> None:
        """The branch's charts begin with the parent's curves, when its history does not hold them already."""
        if self.carry is None:
            return
        branched, past = self.carry
        if run_id != branched.branch_id or self.history.run_id != run_id:
            return
        h = self.history
        first = h.train_loss.downsample(ALL_POINTS)[0][:1]
        if not first or first[0] > branched.step:  # a run server's History may start with the parent's steps
            for name in CARRIED:
                setattr(h, name, _joined(past[name], getattr(h, name)))
            for name, series in past["val"].items():
                h.val[name] = _joined(series, h.val.get(name, Series()))
            h.markers = [*past["markers"], *(m for m in h.markers if m[0] > branched.step)]
        # One marker at the branch point, saying it is one (the branch's lr change there is the same event).
        label = "rewind" + (f" {asked_text(branched.changes, ascii_only=True)}" if branched.changes else "")
        h.markers = sorted([m for m in h.markers if m[0] != branched.step] + [(branched.step, label)],
                           key=lambda m: m[0])
        self.app.scheduler.changed({"loss", "metric", "grad", "lr"})

    def on_rolled_back(self, event: p.RolledBack) -> None:
        skipped = len(event.skipped)
        self.log("change", f"rolled back from step {event.from_step:,} to {event.step:,}"
                           + (f", skipping {skipped} batch{'es' * (skipped != 1)}" if skipped else "")
                           + (" and halving the lr" if event.action == "halve_lr" else "") + f": {event.reason}")

    def on_error(self, event: p.Error) -> None:
        if event.message.startswith("rewind"):
            self.asked_at = None
            self.carry = None


class GuardController(Controller):
    """The spike guard's questions: a GuardTripped that paused the run opens GuardScreen; its key is the answer."""

    HANDLES = {p.GuardTripped: "on_tripped", p.StateChanged: "on_state"}

    def __init__(self, app):
        super().__init__(app)
        self.screen = None

    def on_tripped(self, event: p.GuardTripped) -> None:
        if event.run_id != self.history.run_id:
            return
        level = "error" if event.action == "stop" else "warning"
        self.log(level, f"spike guard at step {event.step:,}: {event.reason}"
                        + {"ask": " (paused: it asks)", "rollback": " (rolling back)", "stop": " (stopping)"}.get(
                            event.action, ""))
        if event.action != "ask" or self.screen is not None:
            return
        from torchtui.tui.screens.guard import GuardScreen

        self.screen = GuardScreen(event, self.history.lr_now)
        self.app.push_screen(self.screen, lambda answer, tripped=event: self.answer(tripped, answer))

    def answer(self, tripped: p.GuardTripped, action: str | None) -> None:
        self.screen = None
        if action == MOOT:
            return
        if action is None:
            self.log("info", "the run stays paused: space resumes it as it is, w rewinds it")
            return
        if self.history.run_id != tripped.run_id or self.history.state not in p.ACTIVE_STATES:
            self.notify("the run is no longer the one the guard paused", severity="warning")
            return
        self.bridge.send(p.GuardAnswer(action=action, run_id=tripped.run_id))
        self.log("info", {"rollback": "rolling back and skipping the bad batches…",
                          "halve_lr": "rolling back, skipping the bad batches and halving the lr…",
                          "continue": "continuing as it is"}[action])

    def on_state(self, event: p.StateChanged) -> None:
        """The run went on or ended another way (another client answered, space, x): the question is moot."""
        if self.screen is not None and event.state != p.PAUSED and self.screen.is_attached:
            self.screen.dismiss(MOOT)


def _upto(series: Series, step: int) -> Series:
    """A copy of `series` with its points at or before `step` (every point it still holds there)."""
    xs, ys = series.downsample(ALL_POINTS)
    out = Series(series.cap)
    kept = [(x, y) for x, y in zip(xs, ys) if x <= step]
    out.extend([x for x, _ in kept], [y for _, y in kept])
    return out


def _joined(before: Series, after: Series) -> Series:
    """`before`'s points, then `after`'s."""
    out = Series(after.cap)
    for series in (before, after):
        xs, ys = series.downsample(ALL_POINTS)
        out.extend(xs, ys)
    return out


def asked_text(changes: dict, ascii_only: bool = False) -> str:
    """A rewind's changes as asked (Rewind.changes, echoed by Branched): "lr ÷2", "lr 0.001, grad_clip 1"; the
    chart markers' form ("lr /2", as history.change_label writes live changes) with `ascii_only`."""
    parts = []
    for name, value in changes.items():
        if name == "lr_scale" and isinstance(value, (int, float)) and value > 0:
            up = value >= 1
            parts.append(f"lr {'x' if up else '/' if ascii_only else '÷'}{(value if up else 1 / value):g}")
        else:
            parts.append(f"{name} {value:g}" if isinstance(value, (int, float)) else f"{name} {value}")
    return ", ".join(parts)
