"""The app's LR range test: `f` runs it (on a copy of the active run, or on the setup) and shows the curve; the
suggested lr goes to the run as a live change of its current lr, or into the Hparams pane as train.lr."""

from __future__ import annotations

from torchtui.engine import protocol as p
from torchtui.tui.controllers import Controller


class LrFindController(Controller):
    """Owns the open LrFindScreen while it waits for its LrFound."""

    HANDLES = {p.LrFound: "on_found"}

    def __init__(self, app):
        super().__init__(app)
        self.screen = None

    def open(self) -> None:
        from torchtui.tui.screens.lr_find import LrFindScreen

        if not self.bridge.ready:
            self.notify("the engine is still loading torch; press f again in a moment")
            return
        active = self.history.state in p.ACTIVE_STATES
        if not active and self.main.problem:
            self.notify(f"fix this first: {self.main.problem}", severity="error")
            return
        source = "from the run's current weights (the run itself is untouched)" if active else \
            f"a fresh model of the setup ({self.app.setup.config.name})"
        target = "the run" if active else "train.lr"
        self.screen = LrFindScreen(source, target, rerun=self.request)
        self.app.push_screen(self.screen, self.apply)
        self.request()

    def request(self) -> None:
        """Ask the engine for a range test: of the active run (between its steps), else of the setup."""
        active = self.history.state in p.ACTIVE_STATES
        self.bridge.request(p.FindLr, config={} if active else self.app.setup.config.to_dict())

    def on_found(self, event: p.LrFound) -> None:
        if not self.bridge.is_current(event):
            return  # another client's, or one asked before the latest
        if event.error:
            self.log("error", f"lr range test: {event.error}", event.traceback)
        else:
            for note in event.notes:
                self.log("warning", note)
            suggested = f"{event.suggested_lr:.2g}" if event.suggested_lr is not None else "none"
            where = f" at step {event.step:,}" if event.run_id else ""
            self.log("info", f"lr range test{where}: suggested lr {suggested}, {len(event.points)} steps in "
                             f"{event.seconds:.2g} s" + (f" ({event.stopped})" if event.stopped else ""))
        if self.screen is not None:
            self.screen.show(event)

    def apply(self, lr: float | None) -> None:
        """The screen's answer: the active run's current lr (its schedule scaled to it), or the setup's train.lr."""
        self.screen = None
        if lr is None:
            return
        if self.history.state in p.ACTIVE_STATES:
            # The test measured the lr that works now: the next step's, whatever the schedule's base is.
            self.bridge.send(p.SetHparams(current_lr=lr))  # HparamsChanged then updates the pane and the charts
            self.notify(f"lr {lr:g} from the next step")
            return
        self.app.setup.set_train(lr=lr)
        self.log("change", f"train.lr {lr:g} (from the LR range test)")
        self.notify(f"train.lr = {lr:g} in the Hparams pane")
