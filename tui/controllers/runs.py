"""The Runs screen (`b`: a run picked there becomes the setup, or a new run from its checkpoint), a preset's
sweep (`S`: in the background, with its leaderboard), and the sanity check (`o`: overfit one batch)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from torchtui.engine import protocol as p
from torchtui.engine.config import from_dict
from torchtui.engine.runs import default_runs_dir, slug
from torchtui.engine.schema import ConfigError
from torchtui.tui.controllers import Controller

SANITY_STEPS = 300    # epochs of one batch each: enough for a learnable setup to memorise it
SANITY_LOSS = 0.05


class RunsController(Controller):
    """The runs folder as the app sees it: browsing, continuing from a run, sweeps."""

    def __init__(self, app):
        super().__init__(app)
        self.trial_sweep: Path | None = None  # the sweep folder of the trial whose setup `u` loaded: S continues it

    @property
    def folder(self) -> Path:
        return Path(self.app.runs_dir or default_runs_dir())

    def browse(self) -> None:
        from torchtui.tui.screens.runs import RunsScreen

        self.app.push_screen(RunsScreen(self.folder), self.take_run)

    def take_run(self, result) -> None:
        """("use", record): its setup into the panes. ("continue", record, "best" | "last"): that setup with
        the checkpoint as model.pretrained, started at once (origin.json records the parent)."""
        if not result:
            return
        kind, record = result[0], result[1]
        if kind == "use" and self.history.state in p.ACTIVE_STATES:
            self._use_asking(record)
            return
        if self.history.state in p.ACTIVE_STATES:
            self.notify("a run is active here: stop it (x) before continuing from another", severity="error")
            return
        self._take(result)

    def _use_asking(self, record) -> None:
        """u with a run active: stop that run, or load the setup for the next start (as ctrl+o offers)."""
        from torchtui.tui.screens.confirm import ConfirmScreen

        state = self.history.state

        def answer(choice) -> None:
            if choice is True and self.history.state in p.ACTIVE_STATES:
                self.bridge.send(p.Stop())
            if choice in (True, "later") and self._take(("use", record)) and choice == "later":
                self.main.notice = (f"the panes show the setup of {record.run_id}; the active run keeps its own "
                                    "setup (r restarts it with this one)")

        self.app.push_screen(ConfirmScreen(f"A run is {state}. Stop it (saving last.pt) and use the setup of "
                                           f"{record.run_id}, or use it for the next start while the {state} run "
                                           "keeps its own setup?", title="A run is active", yes="Stop it and use",
                                           no="Cancel", extra=("o", "Use for the next start", "later")), answer)

    def _take(self, result) -> bool:
        kind, record = result[0], result[1]
        try:
            config = from_dict(record.config)
        except ConfigError as err:
            self.log("error", f"the setup of {record.run_id} does not load: {err}")
            self.notify(err.first_line, severity="error")
            return False
        if kind == "continue":
            checkpoint = Path(record.path) / "checkpoints" / f"{result[2]}.pt"
            config = dataclasses.replace(config, model=dataclasses.replace(config.model, pretrained=str(checkpoint)))
        self.app.setup.show_setup(config)
        self.app.setup.preset_ref = record.preset
        from torchtui.engine.catalog import SWEEP_FILE

        sweep_folder = Path(record.path).parent
        self.trial_sweep = sweep_folder if record.sweep and (sweep_folder / SWEEP_FILE).is_file() else None
        if kind == "continue":
            self.log("info", f"continuing from {record.run_id} ({result[2]}.pt) as a new run")
            self.app.runner.toggle()
        else:
            self.log("info", f"loaded the setup of run {record.run_id}" + (
                f" (trial {record.trial} of sweep {record.sweep}: S continues sweep {record.sweep}, not a new sweep "
                "around this trial)" if self.trial_sweep else ""))
        return True

    def sweep(self) -> None:
        """S: run the opened preset's sweep (with the setup as the panes have it), or continue the sweep of the
        trial `u` loaded, in the background in a session of its own (it outlives the app and the SSH
        connection), and show its leaderboard. A finished sweep is said, not started again."""
        if self.trial_sweep is not None:
            self._continue_trials_sweep(self.trial_sweep)
            return
        setup = self.app.setup
        if setup.sweep_section is None:
            self.notify("no sweep here: open a preset with a sweep: section (ctrl+o); see the README's Sweeps",
                        severity="warning")
            return
        if self.main.problem:
            self.notify(f"fix this first: {self.main.problem}", severity="error")
            return
        name = slug(setup.config.name)
        self._launch(self.folder / f"sweep-{name}", name, setup.config.to_dict(), setup.sweep_section, "")

    def _continue_trials_sweep(self, folder: Path) -> None:
        from torchtui.engine import presets
        from torchtui.engine.catalog import SWEEP_FILE

        try:
            saved = presets.read_yaml(folder / SWEEP_FILE)
            name, base, section = str(saved["name"]), dict(saved["config"]), dict(saved["sweep"])
        except (ConfigError, OSError, KeyError, TypeError, ValueError) as err:
            self.notify(f"the loaded trial's sweep cannot be continued ({folder / SWEEP_FILE}: {err})",
                        severity="error")
            return
        if folder.name != f"sweep-{name}":
            self.notify(f"{folder} was renamed from sweep-{name}: continue it with torchtui sweep "
                        f"{folder / 'preset.yaml'} --name {name}", severity="error")
            return
        self._launch(folder, name, base, section, " (the sweep of the trial loaded with u)")

    def _launch(self, folder: Path, name: str, base: dict, section: dict, why: str) -> None:
        """Start (or continue) sweep `name` in `folder` unless it is finished; show its leaderboard."""
        from torchtui.engine import sweep
        from torchtui.engine.sweep.study import Sweep
        from torchtui.tui.screens.runs import RunsScreen

        try:
            spec = sweep.parse(section, base)
            # a different sweep already in that folder is said here, not only in the background's log
            Sweep(spec, base, folder, name).claim_folder()
        except (ConfigError, OSError) as err:
            self.log("error", str(err))
            self.notify(str(err).splitlines()[0], severity="error", timeout=8)
            return
        done, wanted = trials_done(folder), spec.trials
        if spec.method == "grid":
            wanted = min(wanted, len(spec.grid_points()))
        if done >= wanted:
            self.log("info", f"sweep {name} is finished: {done} of {wanted} trials done ({folder}). Its leaderboard "
                             "is open (u takes a trial's setup); to run more, raise sweep.trials in the preset, or "
                             "remove the folder to start it over")
            self.app.push_screen(RunsScreen(folder, sort=spec.metric, title=f"sweep {name} (finished)"),
                                 self.take_run)
            return
        try:
            child = start_sweep(folder, {**base, "sweep": section}, str(folder.parent), name=name)
        except OSError as err:
            self.notify(f"could not start the sweep: {err}", severity="error")
            return
        self._reap(child, name, folder)
        verb = "continuing" if done or why else "running"
        self.log("info", f"{verb} sweep {name}{why}: {spec.method}, {done} of {wanted} trials of val {spec.metric} "
                         f"done, in the background (pid {child.pid}; log {folder / 'sweep.log'})")
        self.app.push_screen(RunsScreen(folder, sort=spec.metric, title=f"sweep {name} (pid {child.pid})"),
                             self.take_run)

    def _reap(self, child, name: str, folder: Path) -> None:
        """Wait for the sweep process off the UI thread (an ended child not waited for stays <defunct>) and
        say how it ended."""
        import threading

        def wait() -> None:
            code = child.wait()
            if not self.app.is_running:
                return  # the app has ended: the sweep's own log says how it went
            try:
                self.app.call_from_thread(self._sweep_ended, name, folder, child.pid, code)
            except RuntimeError:
                pass  # it ended just now

        threading.Thread(target=wait, name="torchtui-sweep-wait", daemon=True).start()

    def _sweep_ended(self, name: str, folder: Path, pid: int, code: int) -> None:
        log = folder / "sweep.log"
        try:
            last = next((line for line in reversed(log.read_text(errors="replace").splitlines()) if line.strip()), "")
        except OSError:
            last = ""
        if code == 0:
            self.log("info", f"sweep {name} (pid {pid}) ended: b lists its trials ({folder})")
            return
        self.log("error", f"sweep {name} (pid {pid}) ended with exit code {code}: {last.strip()} (log {log})")
        self.notify(f"sweep {name} ended with exit code {code}: see the log", severity="error")


class SanityCheck(Controller):
    """o: train the setup on one batch only (train.overfit_batches: 1). A model, loss and lr that can learn
    drive that batch's loss near 0; the log says whether it did (the workflow's first debugging step). The
    check's run is known by its Start's request id, echoed by its RunStarted."""

    HANDLES = {p.RunStarted: "on_started", p.RunFinished: "on_finished"}

    def __init__(self, app):
        super().__init__(app)
        self.request_id: int | None = None  # the check's Start
        self.run_id: str | None = None      # its run, once started

    def start(self) -> None:
        if self.history.state in p.ACTIVE_STATES:
            self.notify("a run is active: stop it (x) first, then o checks the setup on one batch", severity="warning")
            return
        if self.main.problem:
            self.notify(f"fix this first: {self.main.problem}", severity="error")
            return
        if not self.bridge.ready:
            self.notify("still loading torch: press o again in a moment")
            return
        setup = self.app.setup
        plain = setup.config.to_dict()
        plain["name"] = f"{setup.config.name}-overfit"
        plain["train"] = {**plain["train"], "overfit_batches": 1, "epochs": SANITY_STEPS, "early_stop_metric": ""}
        self.run_id = None
        self.request_id = self.app.runner.start(config=plain)
        self.log("info", f"sanity check: training on one batch for {SANITY_STEPS} steps; a setup that can "
                         f"learn takes its loss below {SANITY_LOSS}")

    def on_started(self, event: p.RunStarted) -> None:
        if self.request_id is not None and event.request_id == self.request_id:
            self.run_id = event.run_id

    def on_finished(self, event: p.RunFinished) -> None:
        if self.run_id is None or event.run_id != self.run_id:
            return
        self.request_id = self.run_id = None
        loss = (event.summary.get("val") or {}).get("loss")  # evaluated on that same batch
        steps = event.summary.get("steps")
        if event.state != p.FINISHED or loss is None:
            self.log("warning", f"sanity check ended {event.state} before it could say anything")
        elif loss < SANITY_LOSS:
            self.log("info", f"sanity check passed: loss {loss:.3g} on one batch after {steps} steps: the model, "
                             "loss and optimizer can learn. Now train on all the data (space)")
        else:
            self.log("warning", f"sanity check failed: the loss of one batch only went down to {loss:.3g} in {steps} "
                                "steps. Check the lr (f finds one), the loss for this task, and regularisation "
                                "(dropout, weight decay) or a model too small")


def trials_done(folder: Path) -> int:
    """The trials of the sweep in `folder` that finished (complete or pruned), from each one's trial.json."""
    import json

    done = 0
    for path in folder.glob("*/trial.json"):
        try:
            done += json.loads(path.read_text()).get("state") in ("complete", "pruned")
        except (OSError, ValueError, AttributeError):
            pass  # cut short, or being written: not counted
    return done


def start_sweep(folder: Path, preset: dict, runs_dir: str, name: str):
    """`torchtui sweep` on `preset` (written into the sweep folder) in a session of its own; returns the Popen."""
    import subprocess
    import sys

    import yaml

    from torchtui.engine.files import atomic_write_text

    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "preset.yaml"
    atomic_write_text(path, yaml.safe_dump(preset, sort_keys=False, allow_unicode=True))
    with open(folder / "sweep.log", "ab") as log:
        return subprocess.Popen([sys.executable, "-m", "torchtui.cli", "sweep", str(path), "--runs-dir", runs_dir,
                                 "--name", name], stdout=log, stderr=log, stdin=subprocess.DEVNULL,
                                start_new_session=True)
