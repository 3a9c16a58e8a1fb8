"""What the charts and the status bar know about the current run, built from the engine's events."""

from __future__ import annotations

import math

from torchtui.engine import protocol as p
from torchtui.engine.history.series import Series, ema, last_y

GROUPS = frozenset({"loss", "metric", "grad", "lr", "prediction", "status"})
# Per-step EMA weight: about a 20-step window, enough to read a minibatch loss's trend on small data.
SMOOTH_ALPHA = 0.05


class RunHistory:
    """The current run's series and latest values; `apply(event)` says which chart groups changed.

    Every RunStarted starts over, a resume of the same run too: its steps go on from the checkpoint's, which
    may be behind what was drawn (a stopped run's last.pt, best.pt). A run server keeps one of these for its
    run, built from the same events (on a resume, first from the run's metrics.jsonl, truncated at the resumed
    step), and sends it whole after RunStarted (p.History) to a client that attaches or sees the run resume,
    so the curves continue exactly as the run has them without the client reading the file. Events of other
    runs are ignored, except run-less state changes (a start that failed before it had an id, a worker that
    died), which still set the state. No sequence of events can make it raise (tests/tui/test_history_fuzz.py).
    """

    def __init__(self):
        self.state: str = p.IDLE
        self.reason: str = ""
        self.started: p.RunStarted | None = None
        self._clear()

    def _clear(self) -> None:
        self.task = ""
        self.layers: list[str] = []
        self.train_loss = Series()
        self.train_loss_smooth = Series()
        self.train_acc = Series()
        self.train_acc_smooth = Series()
        self.lr = Series()
        self.lr_now: float | None = None  # the lr in effect: the last step's, or a live change confirmed since
        self._lr_changed_at = -1  # steps up to this one ran before the last live lr change
        self.grad_norm = Series()
        self.layer_grad: dict[str, Series] = {}
        self.update_ratio: dict[str, Series] = {}
        self.val: dict[str, Series] = {}
        self.test: dict = {}
        self.dead_relu: dict[str, float] = {}
        self.markers: list[tuple[int, str]] = []
        self.changes: list[p.HparamsChanged] = []  # every live change so far: a client that attaches sets its fields
        self.predictions: p.Predictions | None = None
        self.confusion: p.EvalResult | None = None  # the last evaluation with a confusion matrix (val or test)
        self.last_stats: p.StepStats | None = None
        self.summary: dict = {}

    @property
    def run_id(self) -> str | None:
        return self.started.run_id if self.started is not None else None

    def to_plain(self) -> dict:
        """This history as plain values (a few MB at most, however long the run: its series are bounded), for
        p.History and history.json."""
        from torchtui.engine.history import plain

        return plain.encode(vars(self))

    @classmethod
    def from_plain(cls, data: dict) -> RunHistory:
        """The history to_plain() made; ValueError, KeyError or TypeError for anything else."""
        from torchtui.engine.history import plain

        history = cls()
        values = plain.decode(data)
        if not isinstance(values, dict) or set(values) != set(vars(history)):
            raise ValueError("not a run history (its fields differ)")
        history.__dict__.update(values)
        history.markers = [tuple(marker) for marker in history.markers]
        return history

    def apply(self, event) -> set[str]:
        """Fold one engine event in; return the chart groups (see GROUPS) whose picture changed."""
        handler = getattr(self, f"_on_{type(event).__name__}", None)
        if handler is None:
            return set()
        if isinstance(event, (p.RunStarted, p.StateChanged)):
            return handler(event)
        if event.run_id != self.run_id or self.started is None:
            return set()
        return handler(event)

    # ------------------------------------------------------------------ handlers

    def _on_RunStarted(self, event: p.RunStarted) -> set[str]:
        # A resume restarted near step 4 of a history that ended at 24,288: its accuracy gaps went negative and
        # the EMA overflowed (OverflowError in ema, the app crashed). The replay that follows redraws the past.
        self._clear()
        self.started = event
        self.task = event.task
        self.layers = list(event.layers)
        self.reason = ""
        return set(GROUPS)

    def _on_StateChanged(self, event: p.StateChanged) -> set[str]:
        if event.run_id is not None and self.started is not None and event.run_id != self.run_id:
            return set()
        self.state, self.reason = event.state, event.reason
        # The metric and prediction views say different things once a run has ended (see their placeholders).
        return {"status", "metric", "prediction"} if event.state in p.END_STATES else {"status"}

    def _on_StepStats(self, event: p.StepStats) -> set[str]:
        self.last_stats = event
        if not event.step:
            return {"status"}
        steps = event.step
        self.train_loss.extend(steps, event.loss)
        self.train_loss_smooth.extend(steps, ema(event.loss, SMOOTH_ALPHA, last_y(self.train_loss_smooth)))
        self.lr.extend(steps, event.lr)
        if event.lr and steps[-1] > self._lr_changed_at:  # buffered steps from before a change do not undo it
            self.lr_now = event.lr[-1]
        # A diverged step's norm can be inf: it is named in the log, the chart keeps its scale.
        finite = [(s, g) for s, g in zip(event.layer_steps, event.grad_norm) if math.isfinite(g)]
        self.grad_norm.extend([s for s, _ in finite], [g for _, g in finite])
        changed = {"loss", "lr", "grad", "status"}
        if event.acc:
            # Sampled every few steps: smoothed by their step gaps.
            xs, ys = list(event.acc_steps), list(event.acc)
            last = self.train_acc.last
            gaps = [x - prev for x, prev in zip(xs, [last[0] if last else (xs[0] - 1 if xs else 0)] + xs)]
            self.train_acc.extend(xs, ys)
            self.train_acc_smooth.extend(xs, ema(ys, SMOOTH_ALPHA, last_y(self.train_acc_smooth), gaps))
            changed.add("metric")
        self._layer_columns(self.layer_grad, event.layer_steps, event.layer_grad_norm)
        self._layer_columns(self.update_ratio, event.layer_steps, event.update_ratio)
        return changed

    def _layer_columns(self, target: dict[str, Series], steps: list, rows: list) -> None:
        """Rows are per sampled step, one value per layer in RunStarted.layers order."""
        width = max((len(row) for row in rows), default=0)
        for i in range(width):  # a column per layer, extended at once
            name = self.layers[i] if i < len(self.layers) else f"#{i}"
            pairs = [(step, row[i]) for step, row in zip(steps, rows) if i < len(row)]
            target.setdefault(name, Series()).extend([s for s, _ in pairs], [v for _, v in pairs])

    def _on_EvalResult(self, event: p.EvalResult) -> set[str]:
        numbers = {k: v for k, v in event.metrics.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
        confused = {"prediction"} if event.confusion else set()
        if event.confusion:
            self.confusion = event
        if event.split == "test":
            self.test = numbers
            return {"metric", "status"} | confused
        if event.split != "val":
            return set()
        for name, value in numbers.items():
            self.val.setdefault(name, Series()).append(event.step, value)
        changed = {"metric"} | confused
        if "loss" in numbers:
            changed.add("loss")
        if event.dead_relu:
            self.dead_relu = dict(event.dead_relu)
            changed.add("grad")
        return changed

    def _on_Predictions(self, event: p.Predictions) -> set[str]:
        self.predictions = event
        return {"prediction"}

    def _on_History(self, event: p.History) -> set[str]:
        """The run so far, from its server: take its state whole (the RunStarted before it cleared ours)."""
        try:
            other = RunHistory.from_plain(event.state)
        except Exception:  # noqa: BLE001 - a server of another torchtui version: the live events still come
            return set()
        if other.run_id != self.run_id:
            return set()
        self.__dict__.update(other.__dict__)
        return set(GROUPS)

    def _on_HparamsChanged(self, event: p.HparamsChanged) -> set[str]:
        self.markers.append((event.step, change_label(event.changes)))
        self.changes.append(event)
        lr = event.changes.get("lr")
        if isinstance(lr, (list, tuple)) and len(lr) == 2 and isinstance(lr[1], (int, float)):
            self.lr_now, self._lr_changed_at = float(lr[1]), event.step  # paused, no step shows it yet
        return {"loss", "lr"}

    def _on_RolledBack(self, event: p.RolledBack) -> set[str]:
        """The run went back to event.step in place (the spike guard): what was drawn after it goes, a marker
        says so."""
        step = event.step
        series = [self.train_loss, self.train_loss_smooth, self.train_acc, self.train_acc_smooth, self.lr,
                  self.grad_norm, *self.layer_grad.values(), *self.update_ratio.values(), *self.val.values()]
        for one in series:
            one.truncate_after(step)
        self.markers = [m for m in self.markers if m[0] <= step]
        self.markers.append((step, "↺ lr/2" if event.action == "halve_lr" else "↺ rollback"))
        return set(GROUPS)

    def _on_GuardTripped(self, event: p.GuardTripped) -> set[str]:
        if event.action == "ask":
            self.markers.append((event.step, "guard ?"))
        elif event.action == "stop":
            self.markers.append((event.step, "guard stop"))
        return {"loss"}

    def _on_RunFinished(self, event: p.RunFinished) -> set[str]:
        self.state = event.state
        self.summary = dict(event.summary)
        self.reason = self.summary.get("reason", self.reason) or self.reason
        if not self.test and self.summary.get("test"):
            self.test = dict(self.summary["test"])
            return {"status", "metric"}
        return {"status"}


def change_label(changes: dict) -> str:
    """A short marker label: "lr x2", "lr /2", or "weight_decay 0→0.01" (the base lr moves with lr: not shown)."""
    parts = []
    for name, pair in changes.items():
        if name == "base_lr":
            continue
        old, new = (list(pair) + [None, None])[:2] if isinstance(pair, (list, tuple)) else (None, pair)
        parts.append(f"{name} {_change(old, new)}")
    return ", ".join(parts)


def _change(old, new) -> str:
    if isinstance(old, (int, float)) and isinstance(new, (int, float)) and old and new:
        ratio = new / old
        for factor, sign in ((ratio, "x"), (1 / ratio if ratio else 0, "/")):
            if math.isfinite(factor) and factor >= 2 and abs(factor - round(factor)) < 1e-6:
                return f"{sign}{round(factor)}"
    return f"{_fmt(old)}→{_fmt(new)}"


def _fmt(value) -> str:
    if value is None:
        return "off"
    return f"{value:g}" if isinstance(value, (int, float)) else str(value)
