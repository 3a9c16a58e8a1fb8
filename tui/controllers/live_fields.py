"""Live fields while a run is active: lr, weight decay and grad clip typed into the Hparams pane wait as pending
values until Enter (or leaving the field), are checked whole, and a change of more than 10× asks first.

Applied per keystroke, clearing `lr` and typing `5e-3` had set the run's lr to 5, then 0.005 (its loss reached
448k). The field holds the base lr, the setup's train.lr: a change sets the base and the engine scales the
schedule by new ÷ old (engine/run/steering.py).
"""

from __future__ import annotations

import dataclasses

from torchtui.engine import protocol as p
from torchtui.engine.config import TrainConfig
from torchtui.tui.controllers import Controller

LIVE = TrainConfig.LIVE
ASK_RATIO = 10.0  # a change by more than this factor (either way) asks before it goes to the run


class LiveFields(Controller):
    """Owns the pending values; the setup keeps the run's own until a change is applied."""

    HANDLES = {p.HparamsChanged: "on_changed", p.History: "on_history", p.Error: "on_error",
               p.StateChanged: "on_state"}

    def __init__(self, app):
        super().__init__(app)
        self.pending: dict[str, float] = {}  # field → the value typed, not sent yet
        self.asking = False                  # a confirmation of a big change is open

    def is_pending(self, name: str) -> bool:
        return name in self.pending

    def hold(self, old, new):
        """`new` (read back from the panes while a run is active) with `old`'s live fields; what differs in them
        becomes pending, shown as such in the pane and the status bar."""
        for name in LIVE:
            value = getattr(new.train, name)
            if value == getattr(old.train, name):
                self.pending.pop(name, None)
            else:
                self.pending[name] = value
        self._show()
        kept = {name: getattr(old.train, name) for name in LIVE}
        return dataclasses.replace(new, train=dataclasses.replace(new.train, **kept))

    def _show(self) -> None:
        hparams = self.app.deck.panes.get("hparams")
        if hparams is not None:
            hparams.mark_pending(set(self.pending))
        self.main.pending = ", ".join(f"{k} {v:g}" for k, v in self.pending.items())  # as the Hparams pane labels it

    def on_committed(self, path: str) -> None:
        """Enter in a field, or focus leaving it: a live field's pending value goes to the run."""
        if path.startswith("train.") and path[len("train."):] in LIVE and (
                self.pending or self.history.state in p.ACTIVE_STATES):
            self.commit()

    def commit(self) -> None:
        """Enter in a live field, or focus leaving it: apply what is pending (asking first for a big change)."""
        if self.asking:
            return
        self.app.setup.revalidate()  # typing may not have settled into a pending value yet
        if not self.pending:
            return
        if self.history.state not in p.ACTIVE_STATES:
            self.fold()
            return
        mine = [line for line in self.app.setup.config_problems
                if line.split(":", 1)[0] in {f"train.{name}" for name in LIVE}]
        if mine:
            self.notify(f"not applied: {mine[0]} (esc reverts)", severity="error")
            return
        train = self.app.setup.config.train
        big = [(name, getattr(train, name), value) for name, value in self.pending.items()
               if _ratio(getattr(train, name), value) > ASK_RATIO]
        if not big:
            self.send()
            return
        from torchtui.tui.screens.confirm import ConfirmScreen

        shown = ", ".join(f"train.{n} {old:g} → {new:g} ({_times(old, new)})" for n, old, new in big)
        self.asking = True

        def answer(yes) -> None:
            self.asking = False
            if yes and self.history.state in p.ACTIVE_STATES:
                self.send()
            else:
                self.revert()

        self.app.push_screen(ConfirmScreen(f"{shown}: apply it to the running run from its next step?",
                                           title="A big live change", yes="Apply", no="Revert"), answer)

    def send(self) -> None:
        changes, self.pending = dict(self.pending), {}
        self.bridge.send(p.SetHparams(**changes))  # lr is the base: the engine scales the schedule by new ÷ old
        self.log("info", f"{', '.join(f'train.{k} {v:g}' for k, v in changes.items())}: sent, applies from the "
                         "next step")
        self._show()

    def revert(self) -> None:
        """Esc (or No to a big change): the fields show the run's values again."""
        if not self.pending:
            return
        self.pending = {}
        self._show()
        train = self.app.setup.config.train
        self.app.deck.panes["hparams"].set_values({name: getattr(train, name) for name in LIVE}, force=True)
        self.app.setup.revalidate()

    def fold(self) -> None:
        """The run ended before the pending values were applied: they are the setup's edits now."""
        values, self.pending = dict(self.pending), {}
        self._show()
        self.app.setup.set_train(**values)
        self.app.setup.revalidate()

    # ------------------------------------------------------------------ the engine's answers

    def on_changed(self, event: p.HparamsChanged) -> None:
        """A live change took effect (ours, another client's, or a resume's): the setup's live fields follow it,
        the base lr into train.lr (never the current lr of a schedule)."""
        if event.run_id != self.history.run_id:
            return
        text = ", ".join(f"{k} {old:g} → {new:g}" for k, (old, new) in event.changes.items() if k != "base_lr")
        self.log("change", f"step {event.step:,}: {text}")
        values = {k: new for k, (_, new) in event.changes.items() if k in ("weight_decay", "grad_clip")}
        if "base_lr" in event.changes:
            values["lr"] = event.changes["base_lr"][1]
        self.app.setup.set_train(**values)

    def on_history(self, event: p.History) -> None:
        """Attached to a run (or it resumed): its live changes so far, as if each had come as it was made."""
        for change in self.history.changes:
            self.on_changed(change)

    def on_error(self, event: p.Error) -> None:
        if event.message.startswith("live change refused"):
            train = self.app.setup.config.train
            self.app.deck.panes["hparams"].set_values({name: getattr(train, name) for name in LIVE}, force=True)

    def on_state(self, event: p.StateChanged) -> None:
        if event.state in p.END_STATES and self.pending and not self.asking:
            self.fold()


def _ratio(old: float, new: float) -> float:
    """How many times larger or smaller `new` is than `old` (1 when either is 0: turning on or off)."""
    if not old or not new:
        return 1.0
    return max(new / old, old / new)


def _times(old: float, new: float) -> str:
    ratio = new / old
    return f"{ratio:.3g}×" if ratio >= 1 else f"÷{1 / ratio:.3g}"
