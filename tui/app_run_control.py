"""The keys that change what trains: space (start, pause, resume; after x it offers to resume the stopped run
from its last.pt), x and r (they ask first while a run is active, as q does), and n from idle (a run
started paused, one step taken)."""

from __future__ import annotations

from pathlib import Path

from torchtui.engine import protocol as p
from torchtui.tui.app_keys import WIDE_VIEW


SECTIONS = ("data", "model", "train", "device")
ROOMY_COLUMNS = 160  # from here the setup and the charts both have room side by side while a run trains


class RunControl:
    """Mixed into TorchTUI: uses its history, bridge, config, problem, log pane and screens."""

    def typing_in(self) -> str:
        """The field keys go to now ("train.lr"), or "" when they go to the app: the status bar shows it, so
        1e6 meant for a field is not taken as the keys 1 (Dataset pane) and e (evaluate)."""
        from textual.widgets import Input, Select, TextArea

        try:
            focused = self.focused
        except Exception:  # noqa: BLE001 - no screen yet or any more (start-up, teardown): nothing has focus
            return ""
        if not isinstance(focused, (Input, Select, TextArea)):
            return ""
        section, _, name = (focused.id or "").partition("-")
        return f"{section}.{name}" if section in SECTIONS and name else "a field"

    def on_descendant_focus(self, event) -> None:
        self.refresh_status()

    def on_descendant_blur(self, event) -> None:
        self.refresh_status()

    def action_toggle_run(self) -> None:
        state = self.history.state
        if state == p.RUNNING:
            self.bridge.send(p.Pause())
        elif state == p.PAUSED:
            self.bridge.send(p.Resume())
        elif self.problem:
            self.notify(f"can't start: {self.problem}", severity="error")
        elif not self.bridge.ready:
            self.queue_start()
        elif self.resumable():
            self.offer_resume()
        else:
            self.start_run()
        self.refresh_status()

    def start_run(self, resume: str = "", then: tuple = ()) -> None:
        """Send Start for the setup in the panes (continuing the run folder `resume` from its last.pt when
        given), then the commands in `then` (Pause, Step: they land before its first step)."""
        self.notice = ""
        self.starting = True
        self.bridge.send(p.Start(config=self.config.to_dict(), runs_dir=self.runs_dir, resume=resume or None,
                                 origin={"preset": self.preset_ref}))
        for command in then:
            self.bridge.send(command)
        self.screen.remove_class("show-more")
        self.screen.add_class("show-charts")
        if not self.screen.has_class("narrow") and self.size.width < ROOMY_COLUMNS and not self.screen.has_class(WIDE_VIEW):
            # 120-159 columns: beside the setup the charts get ~60 columns; while training they take the width
            self.screen.add_class(WIDE_VIEW)
            self.log_pane.add("info", "the charts take the width while the run trains: v brings the setup back")
        self.refresh_status()

    def start_stepping(self) -> None:
        """n with no run: start one paused and take its first step (then n steps on, space runs)."""
        if self.problem:
            self.notify(f"can't start: {self.problem}", severity="error")
        elif not self.bridge.ready:
            self.notify("still loading torch: press n again in a moment")
        else:
            self.start_run(then=(p.Pause(), p.Step()))
            self.log_pane.add("info", "started paused: n takes one step, space trains on")

    def resumable(self) -> str:
        """The folder of the run that was stopped here, when its last.pt exists and the panes still hold
        its setup (live fields and epochs aside); "" otherwise."""
        started = self.history.started
        if started is None or self.history.state != p.STOPPED or not started.config:
            return ""
        if not (Path(started.run_dir) / "checkpoints" / "last.pt").is_file():
            return ""
        from torchtui.engine.catalog import flatten
        from torchtui.engine.config import TrainConfig, from_dict

        free = {"name", "description", "train.epochs", *(f"train.{k}" for k in TrainConfig.LIVE)}
        try:
            old = flatten(from_dict(started.config).to_dict())
        except Exception:  # noqa: BLE001 - a run from another version: start afresh
            return ""
        new = flatten(self.config.to_dict())
        same = all(old.get(k) == new.get(k) for k in {*old, *new} if k not in free)
        return started.run_dir if same else ""

    def offer_resume(self) -> None:
        from torchtui.tui.screens.confirm import ConfirmScreen

        started, step = self.history.started, self.history.last_stats
        at = f" at step {step.step[-1]:,}" if step is not None and step.step else ""
        run_dir = self.resumable()

        def answer(choice) -> None:
            if choice is True:
                self.log_pane.add("info", f"resuming {started.run_id} from its last.pt{at}")
                self.start_run(resume=run_dir)
            elif choice == "new":
                self.start_run()

        self.push_screen(ConfirmScreen(f"{started.run_id} was stopped{at}. Resume it from its last.pt (the same "
                                       "folder, its curves go on), or start a new run from step 0?",
                                       title="Resume the stopped run?", yes="Resume", no="Cancel",
                                       extra=("s", "New run", "new")), answer)

    def action_stop(self) -> None:
        if self.history.state not in p.ACTIVE_STATES:
            self.notify("no run to stop: space starts one")
            return
        self._ask(f"Stop {self._run_name()} after the current step? last.pt is saved; space then offers to "
                  "resume it.", "Stop the run?", "Stop it", "x", lambda: self.bridge.send(p.Stop()))

    def action_restart(self) -> None:
        if self.history.state not in p.ACTIVE_STATES:
            self.action_toggle_run()
            return

        def restart() -> None:
            self.pending_start = True
            self.bridge.send(p.Stop())

        self._ask(f"Restart: stop {self._run_name()} (saving last.pt) and start a new run from step 0 with the "
                  "setup in the panes?", "Restart the run?", "Restart", "r", restart)

    def _run_name(self) -> str:
        started, stats = self.history.started, self.history.last_stats
        at = f" (step {stats.step[-1]:,})" if stats is not None and stats.step else ""
        return (started.run_id if started is not None else "the run") + at

    def _ask(self, message: str, title: str, yes: str, key: str, then) -> None:
        """A confirmation; pressing the same key again (x x, r r) also says yes."""
        from torchtui.tui.screens.confirm import ConfirmScreen

        def answer(choice) -> None:
            if choice and self.history.state in p.ACTIVE_STATES:
                then()

        self.push_screen(ConfirmScreen(message, title=title, yes=yes, no="Cancel", extra=(key, yes, True)), answer)
