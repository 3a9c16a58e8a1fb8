"""The controls callback: commands applied between steps (pause, step, stop, live changes, evaluate, checkpoint,
lr range test), on the state the run's Session owns."""

from __future__ import annotations

from torchtui.engine import protocol as p
from torchtui.engine.run import loop
from torchtui.engine.run.callbacks import Callback
from torchtui.engine.run.callbacks.checkpoints import Checkpoints
from torchtui.engine.run.callbacks.events import EvalEvents
from torchtui.engine.run.callbacks.stats import StatsCallback
from torchtui.engine.run.session import Session
from torchtui.engine.run.steering import apply_live_change


class Controls(Callback):
    """Applies commands between steps: pause blocks here, step lets n batches through, stop ends the run."""

    def __init__(self, session: Session, run: loop.Run, checkpoints: Checkpoints | None, stats: StatsCallback):
        """`checkpoints` writes last.pt on CheckpointNow (None where this process writes no files)."""
        self.session, self.run = session, run
        self.checkpoints, self.stats = checkpoints, stats

    def on_train_batch_start(self, run):
        session = self.session
        if not session.paused and not session.pending and not session.commands_waiting:  # the common case
            return
        if session.pending:
            self.between_steps(run)
        for command in session.received():
            self.handle(run, command)
        waited = False
        while session.paused and not session.should_stop:
            if session.take_step():
                break
            run.callbacks.on_flush(run)  # the client sees every step taken before it waits
            if session.pending:  # a snapshot of the step it waits at (stepping while paused, a snapshot each Step)
                self.between_steps(run)
            waited = True
            self.handle(run, session.next_command())
        if waited:
            self.stats.restart_clock()  # samples/s and ETA count training time, not time spent paused

    def between_steps(self, run) -> None:
        """What waits for a point between two steps: the spike guard's action, then a snapshot that is due."""
        session = self.session
        session.pending = False
        if session.guard is not None and session.guard.trip is not None:
            session.guard.act(run)
        snapshots = session.snapshots
        if snapshots is not None and not run.jumped and not session.should_stop and snapshots.due():
            snapshots.take(run, self.stats.last_loss if run.step else None)

    def handle(self, run, command) -> None:
        session, emit = self.session, self.session.emit
        if isinstance(command, p.Pause):
            if session.pause():
                run.callbacks.on_flush(run)
                session.set_state(p.PAUSED, run.run_id)
        elif isinstance(command, p.Resume):
            if session.resume():
                session.set_state(p.RUNNING, run.run_id)
        elif isinstance(command, p.Step):
            if session.paused:
                session.budget += max(1, command.n)
            else:
                emit(p.Log(run.run_id, "warning", "step: the run is not paused (pause it first)"))
        elif isinstance(command, (p.Stop, p.Shutdown)):
            if isinstance(command, p.Shutdown):
                session.shutdown = True
            session.request_stop(p.STOPPED, "on request" if isinstance(command, p.Stop) else "engine shut down")
        elif isinstance(command, p.SetHparams):
            apply_live_change(run, command)
        elif isinstance(command, p.EvaluateNow):
            run.callbacks.on_flush(run)
            metrics = loop.evaluate(run, "val") if len(run.data.val) else {}
            if metrics:
                for cb in run.callbacks.callbacks:
                    if isinstance(cb, EvalEvents):
                        cb.on_validation_end(run, "val", metrics)
        elif isinstance(command, p.CheckpointNow) and self.checkpoints is not None:
            self.checkpoints.save(run, "manual")
        elif isinstance(command, p.FindLr):
            self._find_lr(run, command)
        elif isinstance(command, p.ListSnapshots):
            ring = session.snapshots.ring.items if session.snapshots is not None else []
            emit(p.SnapshotsListed(command.request_id, run.run_id, [s.listing() for s in ring]))
        elif isinstance(command, p.Rewind):
            from torchtui.engine.run.rewind import ask

            run.callbacks.on_flush(run)  # the steps so far reported and written before the run stops
            ask(run, command)
        elif isinstance(command, p.GuardAnswer):
            if session.guard is None:
                emit(p.Log(run.run_id, "warning", "guard: train.guard is off for this run"))
            else:
                session.guard.answer(run, command.action)
        elif isinstance(command, p.Start):
            emit(p.Error(run.run_id, "a run is already active: stop it before starting another"))
        else:
            from torchtui.engine.run.requests import answer

            answer(command, emit)  # a request (model summary, devices …): answered between steps

    def _find_lr(self, run, command: p.FindLr) -> None:
        """The LR range test on copies of the run's model and optimizer; the run itself is left as it was."""
        from torchtui.engine.run.lr_find import answer

        run.callbacks.on_flush(run)
        self.session.emit(answer(command, run))
        self.stats.restart_clock()  # samples/s counts training, not the sweep
