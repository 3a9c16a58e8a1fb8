"""The engine's one owner of run state: the state machine, the inbox, and the active run's controls.

Before this module the state of a run was spread over the Engine (state, busy, shutdown), the Controls
(paused, step budget), the Run (stop request, end state) and attributes wired into callbacks after they were
built. A Session holds all of it; the Engine, the controls and the loop read and change it here, and the
callbacks get it at construction (Lightning's `(trainer, module)` contract).

    idle ──Start──▶ running ⇄ paused ──▶ finished | stopped | diverged | failed ──Start──▶ running …
"""

from __future__ import annotations

import queue
from collections.abc import Callable
from typing import Any

from torchtui.engine import protocol as p


class Session:
    """The state machine and the active run's controls; one per engine, for its whole life."""

    def __init__(self, emit: Callable[[object], None], inbox: queue.Queue | None = None):
        self.emit = emit
        self.inbox: queue.Queue = inbox if inbox is not None else queue.Queue()
        self.state = p.IDLE
        self.run: Any = None            # loop.Run while one is prepared or trained
        self.callbacks: Any = None      # callbacks.CallbackList of the active run
        self.request_id = 0             # the Start that began the active run (echoed by RunStarted)
        self.busy = False               # a run is being prepared or trained (here or by data-parallel ranks)
        self.shutdown = False           # end the engine once the active run has stopped
        self.snapshots: Any = None      # snapshots.Snapshotter: its ring outlives a run, so a branch keeps them
        self.rewind: Any = None         # rewind.Branch asked for: the engine starts it once the run has stopped
        self._begin_run()

    def _begin_run(self) -> None:
        self.paused = False
        self.budget = 0                 # batches allowed through while paused (Step)
        self.should_stop = False
        self.end_state = p.FINISHED
        self.end_reason = ""
        self.pending = False            # something waits for the next point between two steps (a snapshot, the guard)
        self.guard: Any = None          # guard.Guard of the active run (None: off)

    # ------------------------------------------------------------------ the state machine

    def begin(self, request_id: int = 0) -> None:
        """A Start was taken: a fresh run's controls (not paused, no stop asked for)."""
        self._begin_run()
        self.request_id = request_id

    def attach(self, run, callbacks) -> None:
        """The prepared run and its callbacks (each built with this session) become the active run."""
        self.run, self.callbacks = run, callbacks

    def detach(self) -> None:
        """The run has ended: nothing is active."""
        self.run = self.callbacks = None

    def set_state(self, state: str, run_id: str | None, reason: str = "", emit: bool = True) -> None:
        """Move the state machine; clients hear of it (a relayed state of data-parallel ranks: `emit` False)."""
        self.state = state
        if emit:
            self.emit(p.StateChanged(run_id, state, reason))

    def request_stop(self, state: str = p.STOPPED, reason: str = "") -> None:
        """Ask the loop to end after the current step; the first request's state wins."""
        if not self.should_stop:
            self.should_stop, self.end_state, self.end_reason = True, state, reason

    def pause(self) -> bool:
        """Pause the active run; False when it already was."""
        if self.paused:
            return False
        self.paused = True
        return True

    def resume(self) -> bool:
        """Let a paused run go on (a step budget left over is dropped); False when it was not paused."""
        if not self.paused:
            return False
        self.paused, self.budget = False, 0
        return True

    def take_step(self) -> bool:
        """While paused: whether one more batch may go through now (spending the Step budget)."""
        if self.budget > 0:
            self.budget -= 1
            return True
        return False

    # ------------------------------------------------------------------ the inbox

    @property
    def commands_waiting(self) -> bool:
        # Asked before every step: the deque's length, without qsize()'s lock (a length read is atomic; a command
        # that lands just after it is taken at the next step).
        return bool(self.inbox.queue)

    def received(self) -> list:
        """The commands waiting in the inbox, in order (taken out of it)."""
        out = []
        while True:
            try:
                out.append(self.inbox.get_nowait())
            except queue.Empty:
                return out

    def next_command(self, timeout: float | None = None):
        """The next command, waiting for it (None after `timeout` seconds)."""
        try:
            return self.inbox.get(timeout=timeout)
        except queue.Empty:
            return None
