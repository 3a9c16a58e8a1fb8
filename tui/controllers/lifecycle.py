"""How the app ends: q (while a run is active: stop it, or detach and leave it running; with unsaved edits:
ask), d (detach), SIGTERM (stops the run so last.pt is saved), SIGHUP (the SSH connection dropped: the run goes
on where the engine is a run server, else it is stopped)."""

from __future__ import annotations

import os
import signal
import threading

from torchtui.engine import protocol as p
from torchtui.tui.controllers import Controller

ENGINE_ANSWER_S = 30  # never hang on an engine that does not answer a Stop


class Lifecycle(Controller):
    """Owns the quitting state and what the app prints once the terminal is restored (`farewell`)."""

    HANDLES = {p.StateChanged: "on_state"}

    def __init__(self, app):
        super().__init__(app)
        self.quitting = False  # a Stop was sent on the way out: exit once the run has ended
        self.farewell = ""     # printed after the app: where a detached or stopped run can be found

    def on_state(self, event: p.StateChanged) -> None:
        if event.state in p.END_STATES and self.quitting:
            self.app.exit()

    def stop_and_exit(self) -> None:
        """SIGTERM: stop the run, saving last.pt, then exit and restore the terminal."""
        if self.history.state not in p.ACTIVE_STATES:
            self.app.exit()
            return
        self.quitting = True
        self.bridge.send(p.Stop())
        self.app.set_timer(ENGINE_ANSWER_S, self.app.exit)

    def hang_up(self, signum, frame) -> None:
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

    def detach(self) -> None:
        """d: leave, and let the active run go on in its server (`torchtui attach` comes back to it)."""
        if not self.bridge.can_detach:
            self.notify("this engine runs inside the app: it cannot go on without it (q stops and quits)")
            return
        started = self.history.started
        active = started is not None and self.history.state in p.ACTIVE_STATES
        if active:
            self.farewell = (f"{started.run_id} goes on in the background -> {started.run_dir}\n"
                             f"come back: torchtui attach {started.run_id}   list: torchtui ps   "
                             f"stop: torchtui stop {started.run_id}")
        self.leave(self.app.exit, "detach")

    def resume_hint(self) -> str:
        """What to print on exit about a run that was stopped (or is being stopped): where, and how to go on."""
        started = self.history.started
        if started is None or self.history.state not in (*p.ACTIVE_STATES, p.STOPPED):
            return ""
        return f"{started.run_id} stopped -> {started.run_dir}\ncontinue it: torchtui resume {started.run_dir}"

    def quit(self) -> None:
        if self.history.state not in p.ACTIVE_STATES:
            def go() -> None:
                self.farewell = self.farewell or self.resume_hint()
                self.app.exit()

            self.leave(go, "quit")
            return
        from torchtui.tui.screens.confirm import ConfirmScreen

        def answer(choice: bool | str | None) -> None:
            if choice == "detach":
                self.detach()
            elif choice and self.history.state not in p.ACTIVE_STATES:
                self.app.exit()  # the run ended while the question was open: nothing left to stop
            elif choice:
                self.quitting = True
                self.farewell = self.resume_hint()
                self.log("info", "stopping the run and saving last.pt before quitting…")
                self.bridge.send(p.Stop())
                self.app.set_timer(ENGINE_ANSWER_S, self.app.exit)

        if self.bridge.can_detach:
            screen = ConfirmScreen("A run is active. Stop it (saving last.pt) and quit, or detach and leave it "
                                   "training (torchtui attach comes back to it)?", yes="Stop it", no="Cancel",
                                   extra=("d", "Detach", "detach"))
        else:
            screen = ConfirmScreen("A run is active. Stop it (saving last.pt) and quit?")
        self.app.push_screen(screen, answer)

    def leave(self, go, verb: str) -> None:
        """`go` now, unless the setup has edits that no preset or run holds: then ask (s saves them first)."""
        edited = self.app.setup.unsaved
        if not edited:
            go()
            return
        from torchtui.tui.screens.confirm import ConfirmScreen

        shown = ", ".join(edited[:4]) + (f" and {len(edited) - 4} more" if len(edited) > 4 else "")

        def answer(choice) -> None:
            if choice is True:
                go()
            elif choice == "save":
                self.app.presets.save()

        self.app.push_screen(ConfirmScreen(f"The setup has edits no preset or run holds ({shown}). {verb.title()} "
                                           "and lose them, or save them as a preset first?",
                                           title="Unsaved edits", yes=f"{verb.title()} anyway", no="Cancel",
                                           extra=("s", "Save preset", "save")), answer)
