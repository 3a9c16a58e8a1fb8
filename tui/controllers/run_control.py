"""Starting and steering runs from the keys: space (start, pause, resume; after x it offers to resume the stopped
run from its last.pt), n (one step; from idle a run started paused), x and r (they ask while a run is active;
r checks the setup before it stops anything), + and - (lr ×2/÷2), e (evaluate), c (checkpoint).

Each Start carries a request id that its RunStarted echoes, so the app knows which run is the one it asked for
(several clients may be attached to one run server)."""

from __future__ import annotations

from pathlib import Path

from torchtui.engine import protocol as p
from torchtui.tui.controllers import Controller


class RunController(Controller):
    """Owns what this app asked the engine to do with runs: its Start's id, a queued start, a restart."""

    HANDLES = {p.EngineReady: "on_engine_ready", p.RunStarted: "on_run_started", p.StateChanged: "on_state",
               p.EvalResult: "on_eval", p.CheckpointSaved: "on_checkpoint", p.Log: "on_log", p.Error: "on_error"}

    def __init__(self, app):
        super().__init__(app)
        self.asked: int | None = None    # the request id of our Start whose RunStarted has not come yet
        self.ours: set[int] = set()      # request ids of the Starts this app sent
        self.queued = False              # space while torch loads: start once the engine is ready
        self.pause_sent = False          # space while our Start is on its way: Pause (then Resume) follows it
        self.restart_after_stop = False  # r: a Stop was sent, the Start follows the stopped state
        self.evaluating_at: int | None = None  # the step of an `e` whose val result has not come yet

    def is_ours(self, event: p.RunStarted) -> bool:
        return bool(event.request_id) and event.request_id in self.ours

    @property
    def state(self) -> str:
        return self.history.state

    # ------------------------------------------------------------------ keys

    def toggle(self) -> None:
        if self.asked is not None and self.state not in p.ACTIVE_STATES:
            self.toggle_starting()
        elif self.state == p.RUNNING:
            self.bridge.send(p.Pause())
        elif self.state == p.PAUSED:
            self.bridge.send(p.Resume())
        elif self.main.problem:
            self.notify(f"can't start: {self.main.problem}", severity="error")
        elif not self.bridge.ready:
            self.queue()
        elif self.resumable():
            self.offer_resume()
        else:
            self.start()

    def toggle_starting(self) -> None:
        """space again before our run has started (its data and model are still being made): the engine takes
        commands in order, so a Pause sent now lands before the first step, a Resume after it lets it train."""
        self.pause_sent = not self.pause_sent
        self.bridge.send(p.Pause() if self.pause_sent else p.Resume())
        self.notify("the run starts paused (space again to let it train)" if self.pause_sent
                    else "the run trains as it starts")

    def start(self, resume: str = "", then: tuple = (), config: dict | None = None, name: str = "") -> int:
        """Send Start for the setup in the panes (or `config`), continuing the folder `resume` from its last.pt when
        given, then the commands in `then` (Pause, Step: they land before its first step). Returns its id."""
        setup = self.app.setup
        self.main.notice = ""
        request_id = self.bridge.next_id()
        self.asked, self.pause_sent = request_id, False
        self.ours.add(request_id)
        self.bridge.send(p.Start(config=config or setup.config.to_dict(), runs_dir=self.app.runs_dir,
                                 resume=resume or None, origin={"preset": setup.preset_ref}, request_id=request_id,
                                 interactive=True))  # train.guard auto asks here (headless it rolls back)
        for command in then:
            self.bridge.send(command)
        line = self.main.show_charts()
        if line:
            self.log("info", line)
        return request_id

    def step(self) -> None:
        if self.state == p.PAUSED:
            self.bridge.send(p.Step())
        elif self.state == p.RUNNING:
            self.notify("n steps a paused run; press space to pause it first")
        elif self.main.problem:
            self.notify(f"can't start: {self.main.problem}", severity="error")
        elif not self.bridge.ready:
            self.notify("still loading torch: press n again in a moment")
        else:  # no run: start one paused and take its first step (then n steps on, space runs)
            self.start(then=(p.Pause(), p.Step()))
            self.log("info", "started paused: n takes one step, space trains on")

    def queue(self) -> None:
        """space before the engine is ready: start then (a second press takes it back)."""
        self.queued = not self.queued
        self.main.notice = ("the run starts as soon as the engine is ready (loading torch…; space again to cancel)"
                            if self.queued else "")
        self.notify(self.main.notice or "start cancelled")

    def on_engine_ready(self, event) -> None:
        if self.queued:
            self.queued = False
            self.main.notice = ""
            self.toggle()

    def stop(self) -> None:
        if self.state not in p.ACTIVE_STATES:
            self.notify("no run to stop: space starts one")
            return
        self.ask(f"Stop {self.run_name()} after the current step? last.pt is saved; space then offers to "
                 "resume it.", "Stop the run?", "Stop it", "x", lambda: self.bridge.send(p.Stop()))

    def restart(self) -> None:
        if self.state not in p.ACTIVE_STATES:
            if self.resumable() and not self.main.problem and self.asked is None:
                self.start()  # r is a new run from step 0: the resume of the stopped run is space's offer
            else:
                self.toggle()
            return
        if self.main.problem:  # checked before anything stops: a restart that cannot start stops nothing
            self.notify(f"can't restart: {self.main.problem} (the run goes on)", severity="error")
            return

        def restart() -> None:
            self.restart_after_stop = True
            self.bridge.send(p.Stop())

        self.ask(f"Restart: stop {self.run_name()} (saving last.pt) and start a new run from step 0 with the "
                 "setup in the panes?", "Restart the run?", "Restart", "r", restart)

    def lr_scale(self, factor: float) -> None:
        if self.state not in p.ACTIVE_STATES:
            self.notify("lr ×2/÷2 applies to a running or paused run; edit train.lr in Hparams otherwise")
            return
        # Relative, applied by the engine to the lr it has then: quick presses compound as they should.
        self.bridge.send(p.SetHparams(lr_scale=factor))

    def evaluate(self) -> None:
        started = self.history.started
        if started is None or self.state not in p.ACTIVE_STATES:
            self.notify("e evaluates a running or paused run on its val split; press space to start")
            return
        if not started.splits.get("val"):
            self.notify("this run has no val split to evaluate (data.val_fraction is 0); the test split is "
                        "evaluated at the end")
            return
        stats = self.history.last_stats
        self.evaluating_at = stats.step[-1] if stats is not None and stats.step else started.start_step
        self.log("info", f"evaluating the val split now (step {self.evaluating_at:,})…")
        self.bridge.send(p.EvaluateNow())

    def checkpoint(self) -> None:
        if self.state not in p.ACTIVE_STATES:
            self.notify("c writes last.pt of a running or paused run; press space to start")
            return
        self.bridge.send(p.CheckpointNow())

    # ------------------------------------------------------------------ resuming the stopped run

    def resumable(self) -> str:
        """The folder of the run that was stopped here, when its last.pt exists and the panes still hold its
        setup (the live fields and epochs aside); "" otherwise."""
        started = self.history.started
        if started is None or self.state != p.STOPPED or not started.config:
            return ""
        if not (Path(started.run_dir) / "checkpoints" / "last.pt").is_file():
            return ""
        return started.run_dir if can_resume(started.config, self.app.setup.config.to_dict()) else ""

    def offer_resume(self) -> None:
        from torchtui.tui.screens.confirm import ConfirmScreen

        started, step = self.history.started, self.history.last_stats
        at = f" at step {step.step[-1]:,}" if step is not None and step.step else ""
        run_dir = self.resumable()

        def answer(choice) -> None:
            if choice is True:
                self.log("info", f"resuming {started.run_id} from its last.pt{at}")
                self.start(resume=run_dir)
            elif choice == "new":
                self.start()

        self.app.push_screen(ConfirmScreen(f"{started.run_id} was stopped{at}. Resume it from its last.pt (the "
                                           "same folder, its curves go on), or start a new run from step 0?",
                                           title="Resume the stopped run?", yes="Resume", no="Cancel",
                                           extra=("s", "New run", "new")), answer)

    def run_name(self) -> str:
        started, stats = self.history.started, self.history.last_stats
        at = f" (step {stats.step[-1]:,})" if stats is not None and stats.step else ""
        return (started.run_id if started is not None else "the run") + at

    def ask(self, message: str, title: str, yes: str, key: str, then) -> None:
        """A confirmation; pressing the same key again (x x, r r) also says yes."""
        from torchtui.tui.screens.confirm import ConfirmScreen

        def answer(choice) -> None:
            if choice and self.state in p.ACTIVE_STATES:
                then()

        self.app.push_screen(ConfirmScreen(message, title=title, yes=yes, no="Cancel", extra=(key, yes, True)),
                             answer)

    # ------------------------------------------------------------------ the engine's answers

    def on_run_started(self, event: p.RunStarted) -> None:
        if event.request_id and event.request_id == self.asked:
            self.asked = None
        self.log("info", f"run {event.run_id}: {event.params:,} parameters on {event.device} → {event.run_dir}")

    def on_state(self, event: p.StateChanged) -> None:
        self.main.state = event.state if event.run_id is None or event.run_id == self.history.run_id \
            else self.history.state
        if event.state not in p.END_STATES:
            return
        if event.run_id is None and self.asked is not None:
            self.asked = None  # our Start was refused before it had a run: nothing of ours to come
        level = "error" if event.state in (p.DIVERGED, p.FAILED) else "info"
        self.log(level, f"{event.state}" + (f": {event.reason}" if event.reason else ""))
        if self.restart_after_stop and not self.app.lifecycle.quitting:
            self.restart_after_stop = False
            # r said "a new run from step 0": not space's path, which would offer to resume the run just stopped
            if self.main.problem:
                self.notify(f"can't restart: {self.main.problem}", severity="error")
            else:
                self.start()

    def on_eval(self, event: p.EvalResult) -> None:
        if event.split == "test":
            self.log("info", f"test: {metrics_text(event.metrics)}")
        elif event.split == "val" and self.evaluating_at is not None and event.run_id == self.history.run_id:
            self.evaluating_at = None
            self.log("info", f"val at step {event.step:,}: {metrics_text(event.metrics)}")

    def on_checkpoint(self, event: p.CheckpointSaved) -> None:
        if event.kind == "manual":  # last/best are written every epoch; logging each would bury the log
            self.log("info", f"saved checkpoint at step {event.step:,}: {event.path}")

    def on_log(self, event: p.Log) -> None:
        self.log(event.level, event.message)

    def on_error(self, event: p.Error) -> None:
        self.log("error", event.message, event.traceback)
        self.notify(event.message.splitlines()[0], severity="error", timeout=6)


def can_resume(saved: dict, setup: dict) -> bool:
    """Whether a run of config `saved` can continue with `setup`: the engine's own rule (engine/config.py's
    RESUME_FREE and the live fields), so the app never offers a resume the engine would refuse."""
    from torchtui.engine.catalog import changed_fields
    from torchtui.engine.config import RESUME_FREE, TrainConfig, from_dict

    free = {*RESUME_FREE, *(f"train.{k}" for k in TrainConfig.LIVE)}
    try:
        old, new = from_dict(saved).to_dict(), from_dict(setup).to_dict()
    except Exception:  # noqa: BLE001 - a run from another version: start afresh
        return False
    return not changed_fields(old, new, free)


def metrics_text(metrics: dict) -> str:
    return ", ".join(f"{k} {v:.4g}" for k, v in metrics.items() if isinstance(v, (int, float)))
