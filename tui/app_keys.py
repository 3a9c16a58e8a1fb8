"""Run and view keys that answer every press: n (step), e (evaluate now), t (traceback), v (views), 1–4."""

from __future__ import annotations

from torchtui.engine import protocol as p

WIDE_VIEW = "charts-wide"  # at >= 120 columns, v hides the setup panes: the charts take the whole width


class KeyActions:
    """Mixed into TorchTUI: uses its history, bridge, log pane, tabs and pane deck.

    A key that cannot act now says why in a notification, instead of doing nothing."""

    evaluating_at: int | None = None  # the step of an `e` press whose val result has not come yet

    def action_step(self) -> None:
        state = self.history.state
        if state == p.PAUSED:
            self.bridge.send(p.Step())
        elif state == p.RUNNING:
            self.notify("n steps a paused run; press space to pause it first")
        else:
            self.start_stepping()  # no run: start one paused and take its first step

    def action_evaluate(self) -> None:
        started = self.history.started
        if started is None or self.history.state not in p.ACTIVE_STATES:
            self.notify("e evaluates a running or paused run on its val split; press space to start")
            return
        if not started.splits.get("val"):
            self.notify("this run has no val split to evaluate (data.val_fraction is 0); the test split is "
                        "evaluated at the end")
            return
        stats = self.history.last_stats
        self.evaluating_at = stats.step[-1] if stats is not None and stats.step else started.start_step
        self.log_pane.add("info", f"evaluating the val split now (step {self.evaluating_at:,})…")
        self.bridge.send(p.EvaluateNow())

    def on_engine_EvalResult(self, event: p.EvalResult) -> None:
        if event.split == "test":
            self.log_pane.add("info", f"test: {_metrics_text(event.metrics)}")
        elif event.split == "val" and self.evaluating_at is not None and event.run_id == self.history.run_id:
            self.evaluating_at = None
            self.log_pane.add("info", f"val at step {event.step:,}: {_metrics_text(event.metrics)}")

    def action_traceback(self) -> None:
        if not self.log_pane.last_error:
            self.notify("no error to show: t opens the traceback of the last error in the log")
            return
        from torchtui.tui.screens.traceback import TracebackScreen

        self.push_screen(TracebackScreen(*self.log_pane.last_error))

    def action_toggle_view(self) -> None:
        """Below 120 columns one view shows at a time: setup → charts → lr and log → setup. Wider, setup and
        charts are side by side: v hides the setup panes so the charts take the whole width, and back."""
        screen = self.screen
        if not screen.has_class("narrow"):
            screen.toggle_class(WIDE_VIEW)
            return
        if screen.has_class("show-charts"):
            screen.remove_class("show-charts")
            screen.add_class("show-more")
        elif screen.has_class("show-more"):
            screen.remove_class("show-more")
        else:
            screen.add_class("show-charts")

    def action_focus_pane(self, pane_id: str) -> None:
        """Show a pane and focus the pane itself, not a field in it: keys keep reaching the app (space,
        + and -), and tab or a click moves into the fields."""
        self.screen.remove_class("show-charts", "show-more", WIDE_VIEW)
        self.deck.mount(pane_id)
        self.tabs.active = f"tab-{pane_id}"
        if pane_id in self.panes:
            self.call_after_refresh(self.panes[pane_id].focus)


def _metrics_text(metrics: dict) -> str:
    return ", ".join(f"{k} {v:.4g}" for k, v in metrics.items() if isinstance(v, (int, float)))
