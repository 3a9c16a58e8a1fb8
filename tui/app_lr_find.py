"""The app's LR range test: `f` runs it (on a copy of the active run, or on the setup) and shows the curve;
the suggested lr goes to the run as a live change, or into the Hparams pane when no run is active."""

from __future__ import annotations

import dataclasses

from torchtui.engine import protocol as p


class LrFindActions:
    """Mixed into TorchTUI: uses its bridge, history, config, problem, panes, log pane and notify."""

    lr_find_screen = None  # the open LrFindScreen, waiting for its LrFound

    def action_lr_find(self) -> None:
        from torchtui.tui.screens.lr_find import LrFindScreen

        if not self.bridge.ready:
            self.notify("the engine is still loading torch; press f again in a moment")
            return
        active = self.history.state in p.ACTIVE_STATES
        if not active and self.problem:
            self.notify(f"fix this first: {self.problem}", severity="error")
            return
        source = "from the run's current weights (the run itself is untouched)" if active else \
            f"a fresh model of the setup ({self.config.name})"
        target = "the run" if active else "train.lr"
        self.lr_find_screen = LrFindScreen(source, target, rerun=self.request_lr_find)
        self.push_screen(self.lr_find_screen, self.apply_found_lr)
        self.request_lr_find()

    def request_lr_find(self) -> None:
        """Ask the engine for a range test: of the active run (between its steps), else of the setup."""
        active = self.history.state in p.ACTIVE_STATES
        self.bridge.request(p.FindLr, config={} if active else self.config.to_dict())

    def on_engine_LrFound(self, event: p.LrFound) -> None:
        if not self.bridge.is_current(event):
            return  # another client's, or one asked before the latest
        if event.error:
            self.log_pane.add("error", f"lr range test: {event.error}", event.traceback)
        else:
            for note in event.notes:
                self.log_pane.add("warning", note)
            suggested = f"{event.suggested_lr:.2g}" if event.suggested_lr is not None else "none"
            where = f" at step {event.step:,}" if event.run_id else ""
            self.log_pane.add("info", f"lr range test{where}: suggested lr {suggested}, {len(event.points)} steps in "
                                      f"{event.seconds:.2g} s" + (f" ({event.stopped})" if event.stopped else ""))
        if self.lr_find_screen is not None:
            self.lr_find_screen.show(event)

    def apply_found_lr(self, lr: float | None) -> None:
        """The screen's answer: a live change of the active run's lr, or the setup's train.lr."""
        self.lr_find_screen = None
        if lr is None:
            return
        if self.history.state in p.ACTIVE_STATES:
            self.bridge.send(p.SetHparams(lr=lr))  # HparamsChanged then updates the pane and the charts
            self.notify(f"lr {lr:g} from the next step")
            return
        train = dataclasses.replace(self.config.train, lr=lr)
        self.config = dataclasses.replace(self.config, train=train)
        self.pane("hparams").set_values({"lr": lr})
        self.log_pane.add("change", f"train.lr {lr:g} (from the LR range test)")
        self.notify(f"train.lr = {lr:g} in the Hparams pane")
