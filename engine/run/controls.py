"""The controls callback: commands applied between steps (pause, step, stop, live changes, evaluate, checkpoint,
lr range test)."""

from __future__ import annotations

import queue

from torchtui.engine import protocol as p
from torchtui.engine.run import loop
from torchtui.engine.run.callbacks import Callback
from torchtui.engine.run.callbacks.checkpoints import Checkpoints
from torchtui.engine.run.callbacks.events import EvalEvents, append_rows
from torchtui.engine.run.callbacks.stats import StatsCallback


class Controls(Callback):
    """Applies commands between steps: pause blocks here, step lets n batches through, stop ends the run."""

    def __init__(self, engine, run: loop.Run):
        """`engine` is the Engine that owns the run: its inbox, emit and state."""
        self.engine, self.run = engine, run
        self.paused = False
        self.budget = 0  # batches allowed through while paused (Step)
        self.checkpoints: Checkpoints | None = None
        self.stats: StatsCallback | None = None

    def on_train_batch_start(self, run):
        if not self.paused and not self.engine.inbox.qsize():  # the common case: nothing to do
            return
        for command in self._received():
            self.handle(run, command)
        waited = False
        while self.paused and not run.should_stop:
            if self.budget > 0:
                self.budget -= 1
                break
            run.callbacks.on_flush(run)  # the client sees every step taken before it waits
            waited = True
            self.handle(run, self.engine.inbox.get())
        if waited and self.stats is not None:
            self.stats.restart_clock()  # samples/s and ETA count training time, not time spent paused

    def _received(self) -> list:
        """The commands waiting in the engine's inbox, in order (taken out of it)."""
        out = []
        while True:
            try:
                out.append(self.engine.inbox.get_nowait())
            except queue.Empty:
                return out

    def handle(self, run, command) -> None:
        emit = self.engine.emit
        if isinstance(command, p.Pause) and not self.paused:
            self.paused = True
            run.callbacks.on_flush(run)
            self.engine._set_state(p.PAUSED, run.run_id)
        elif isinstance(command, p.Resume) and self.paused:
            self.paused, self.budget = False, 0
            self.engine._set_state(p.RUNNING, run.run_id)
        elif isinstance(command, p.Step):
            if self.paused:
                self.budget += max(1, command.n)
            else:
                emit(p.Log(run.run_id, "warning", "step: the run is not paused (pause it first)"))
        elif isinstance(command, (p.Stop, p.Shutdown)):
            if isinstance(command, p.Shutdown):
                self.engine._shutdown = True
            run.request_stop(p.STOPPED, "on request" if isinstance(command, p.Stop) else "engine shut down")
        elif isinstance(command, p.SetHparams):
            self._set_hparams(run, command)
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
        elif isinstance(command, p.Start):
            emit(p.Error(run.run_id, "a run is already active: stop it before starting another"))
        elif not self.engine._answer(command):
            pass  # Pause while paused, Resume while running: nothing to do

    def _find_lr(self, run, command: p.FindLr) -> None:
        """The LR range test on copies of the run's model and optimizer; the run itself is left as it was."""
        from torchtui.engine.run.lr_find import answer

        run.callbacks.on_flush(run)
        self.engine.emit(answer(command, run))
        if self.stats is not None:
            self.stats.restart_clock()  # samples/s counts training, not the sweep

    def _set_hparams(self, run, command: p.SetHparams) -> None:
        from torchtui.engine.run.optim import live_problem, scale_lr

        changes = {}
        try:
            factor = command.lr / run.lr if command.lr is not None else 1.0
            factor *= command.lr_scale if command.lr_scale is not None else 1.0
            if factor != 1.0:
                old = run.lr
                scale_lr(run.optimizer, run.scheduler, run.plateau, factor)
                changes["lr"] = [old, run.lr]
            if command.weight_decay is not None:
                if command.weight_decay < 0:
                    raise ValueError(f"train.weight_decay: must be zero or more, got {command.weight_decay!r}")
                if problem := live_problem(run.config.train.optimizer, "weight_decay", command.weight_decay):
                    raise ValueError(f"train.weight_decay: {problem}")
                old = run.optimizer.param_groups[0].get("weight_decay", 0.0)
                for group in run.optimizer.param_groups:
                    group["weight_decay"] = command.weight_decay
                changes["weight_decay"] = [old, command.weight_decay]
            if command.grad_clip is not None:
                if command.grad_clip < 0:
                    raise ValueError(f"train.grad_clip: must be zero or more, got {command.grad_clip!r}")
                if problem := live_problem(run.config.train.optimizer, "grad_clip", command.grad_clip):
                    raise ValueError(f"train.grad_clip: {problem}")
                changes["grad_clip"] = [run.grad_clip, command.grad_clip]
                run.grad_clip = command.grad_clip
        except (ValueError, ZeroDivisionError) as err:
            self.engine.emit(p.Error(run.run_id, f"live change refused: {err}"))
            return
        if changes:
            self.engine.emit(p.HparamsChanged(run.run_id, run.step, changes))
            append_rows(run, self.engine.emit,
                        [{"type": "hparams", "step": run.step, **{k: v[1] for k, v in changes.items()}}])
