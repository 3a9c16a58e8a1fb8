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
        if self.history.state in p.ACTIVE_STATES:
            self.notify("a run is active here: stop it (x) before loading another setup", severity="error")
            return
        try:
            config = from_dict(record.config)
        except ConfigError as err:
            self.log("error", f"the setup of {record.run_id} does not load: {err}")
            self.notify(err.first_line, severity="error")
            return
        if kind == "continue":
            checkpoint = Path(record.path) / "checkpoints" / f"{result[2]}.pt"
            config = dataclasses.replace(config, model=dataclasses.replace(config.model, pretrained=str(checkpoint)))
        self.app.setup.show_setup(config)
        self.app.setup.preset_ref = record.preset
        if kind == "continue":
            self.log("info", f"continuing from {record.run_id} ({result[2]}.pt) as a new run")
            self.app.runner.toggle()
        else:
            self.log("info", f"loaded the setup of run {record.run_id}")

    def sweep(self) -> None:
        """S: run the opened preset's sweep (with the setup as the panes have it) in the background, in a
        session of its own (it outlives the app and the SSH connection), and show its leaderboard."""
        from torchtui.engine import sweep
        from torchtui.engine.sweep.study import Sweep
        from torchtui.tui.screens.runs import RunsScreen

        setup = self.app.setup
        if setup.sweep_section is None:
            self.notify("no sweep here: open a preset with a sweep: section (ctrl+o); see the README's Sweeps",
                        severity="warning")
            return
        if self.main.problem:
            self.notify(f"fix this first: {self.main.problem}", severity="error")
            return
        base = setup.config.to_dict()
        try:
            spec = sweep.parse(setup.sweep_section, base)
        except ConfigError as err:
            self.log("error", str(err))
            self.notify(err.first_line, severity="error")
            return
        folder = self.folder / f"sweep-{slug(setup.config.name)}"
        try:  # a different sweep already in that folder is said here, not only in the background's log
            Sweep(spec, base, folder, slug(setup.config.name)).claim_folder()
        except (ConfigError, OSError) as err:
            self.log("error", str(err))
            self.notify(str(err).splitlines()[0], severity="error", timeout=8)
            return
        try:
            pid = start_sweep(folder, {**base, "sweep": setup.sweep_section}, str(self.folder))
        except OSError as err:
            self.notify(f"could not start the sweep: {err}", severity="error")
            return
        self.log("info", f"sweep {setup.config.name}: {spec.method}, {spec.trials} trials of val {spec.metric}, "
                         f"running in the background (pid {pid}; log {folder / 'sweep.log'})")
        self.app.push_screen(RunsScreen(folder, sort=spec.metric, title=f"sweep {setup.config.name} (pid {pid})"),
                             self.take_run)


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


def start_sweep(folder: Path, preset: dict, runs_dir: str) -> int:
    """`torchtui sweep` on `preset` (written into the sweep folder) in a session of its own; returns its pid."""
    import subprocess
    import sys

    import yaml

    from torchtui.engine.files import atomic_write_text

    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "preset.yaml"
    atomic_write_text(path, yaml.safe_dump(preset, sort_keys=False, allow_unicode=True))
    with open(folder / "sweep.log", "ab") as log:
        child = subprocess.Popen([sys.executable, "-m", "torchtui.cli", "sweep", str(path), "--runs-dir", runs_dir],
                                 stdout=log, stderr=log, stdin=subprocess.DEVNULL, start_new_session=True)
    return child.pid
