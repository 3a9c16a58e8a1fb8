"""How the app ends: quitting (while a run is active: stop it, or detach and leave it running), detaching
with d, SIGTERM (stops the run so last.pt is saved), SIGHUP (the SSH connection dropped: the run goes on
where the engine is a run server, else it is stopped), and no exit while panes are mounting."""

from __future__ import annotations

import os
import signal
import threading

from torchtui.engine import protocol as p


class Lifecycle:
    """Mixed into TorchTUI: uses its history, bridge, log pane and pane deck."""

    start_when_ready = False  # space pressed while torch loads: the run starts once the engine is ready

    def queue_start(self) -> None:
        """space before the engine is ready: start then (a second press takes it back)."""
        self.start_when_ready = not self.start_when_ready
        self.notice = ("the run starts as soon as the engine is ready (loading torch…; space again to cancel)"
                       if self.start_when_ready else "")
        self.notify(self.notice or "start cancelled")

    def start_if_queued(self) -> None:
        if self.start_when_ready:
            self.start_when_ready = False
            self.notice = ""
            self.action_toggle_run()

    def exit(self, *args, **kwargs) -> None:
        """Exit, but not in the middle of mounting a pane (a quit within the first second): Textual's
        teardown of a half-mounted Select raises. Mounting ends within a second; a timer makes sure."""
        if self.panes_ready or not self.deck.tab_panes or self._exit_when_ready is not None:
            super().exit(*args, **kwargs)
            return
        self._exit_when_ready = (args, kwargs)
        self.set_timer(5, lambda: super(Lifecycle, self).exit(*args, **kwargs))

    def stop_and_exit(self) -> None:
        """SIGTERM: stop the run, saving last.pt, then exit and restore the terminal."""
        if self.history.state not in p.ACTIVE_STATES:
            self.exit()
            return
        self.quitting = True
        self.bridge.send(p.Stop())
        self.set_timer(30, self.exit)  # never hang on a worker that does not answer

    def _hang_up(self, signum, frame) -> None:
        """SIGHUP (the SSH connection dropped): there is no terminal left to restore or draw on.

        A thread lets go of the engine (a run server keeps training; a worker stops the run and saves
        last.pt) and then ends the process, whatever state the UI loop is in: a write to the vanished
        terminal may never return.
        """
        threading.Thread(target=self._shut_down_and_exit, name="torchtui-hangup", daemon=True).start()

    def _shut_down_and_exit(self) -> None:
        try:
            self.bridge.close()
        finally:
            os._exit(128 + signal.SIGHUP)

    def action_detach(self) -> None:
        """d: leave, and let the active run go on in its server (`torchtui attach` comes back to it)."""
        if not self.bridge.can_detach:
            self.notify("this engine runs inside the app: it cannot go on without it (q stops and quits)")
            return
        started = self.history.started
        if started is not None and self.history.state in p.ACTIVE_STATES:
            self.farewell = (f"{started.run_id} goes on in the background -> {started.run_dir}\n"
                             f"come back: torchtui attach {started.run_id}   list: torchtui ps   "
                             f"stop: torchtui stop {started.run_id}")
        self.exit()

    def resume_hint(self) -> str:
        """What to print on exit about a run that was stopped (or is being stopped): where, and how to go on."""
        started = self.history.started
        if started is None or self.history.state not in (*p.ACTIVE_STATES, p.STOPPED):
            return ""
        return f"{started.run_id} stopped -> {started.run_dir}\ncontinue it: torchtui resume {started.run_dir}"

    async def action_quit(self) -> None:
        if self.history.state not in p.ACTIVE_STATES:
            self.farewell = self.farewell or self.resume_hint()
            self.exit()
            return

        from torchtui.tui.screens.confirm import ConfirmScreen

        def answer(choice: bool | str | None) -> None:
            if choice == "detach":
                self.action_detach()
            elif choice and self.history.state not in p.ACTIVE_STATES:
                self.exit()  # the run ended while the question was open: nothing left to stop
            elif choice:
                self.quitting = True
                self.farewell = self.resume_hint()
                self.log_pane.add("info", "stopping the run and saving last.pt before quitting…")
                self.bridge.send(p.Stop())
                self.set_timer(30, self.exit)  # never hang on an engine that does not answer

        if self.bridge.can_detach:
            screen = ConfirmScreen("A run is active. Stop it (saving last.pt) and quit, or detach and leave it "
                                   "training (torchtui attach comes back to it)?", yes="Stop it", no="Cancel",
                                   extra=("d", "Detach", "detach"))
        else:
            screen = ConfirmScreen("A run is active. Stop it (saving last.pt) and quit?")
        self.push_screen(screen, answer)
