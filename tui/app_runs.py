"""The app's runs actions: `b` opens the Runs screen (a run picked there becomes the setup, or a new branch);
`o` checks the setup on one batch."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from torchtui.engine import protocol as p
from torchtui.engine.config import from_dict
from torchtui.engine.runs import default_runs_dir, slug
from torchtui.engine.schema import ConfigError

SANITY_STEPS = 300    # epochs of one batch each: enough for a learnable setup to memorise it
SANITY_LOSS = 0.05


class RunsActions:
    """Mixed into TorchTUI: uses its runs_dir, history, show_setup, log pane and action_toggle_run."""

    def action_runs(self) -> None:
        from torchtui.tui.screens.runs import RunsScreen

        self.push_screen(RunsScreen(self.runs_dir or default_runs_dir()), self.take_run)

    def action_sweep(self) -> None:
        """S: run the opened preset's sweep (with the setup as the panes have it) in the background, in a
        session of its own (it outlives the app and the SSH connection), and show its leaderboard."""
        from torchtui.engine import sweep
        from torchtui.tui.screens.runs import RunsScreen

        if self.sweep_section is None:
            self.notify("no sweep here: open a preset with a sweep: section (ctrl+o); see the README's Sweeps",
                        severity="warning")
            return
        if self.problem:
            self.notify(f"fix this first: {self.problem}", severity="error")
            return
        base = self.config.to_dict()
        try:
            spec = sweep.parse(self.sweep_section, base)
        except ConfigError as err:
            self.log_pane.add("error", str(err))
            self.notify(err.first_line, severity="error")
            return
        from torchtui.engine.sweep.study import Sweep

        folder = Path(self.runs_dir or default_runs_dir()) / f"sweep-{slug(self.config.name)}"
        try:  # a different sweep already in that folder is said here, not only in the background's log
            Sweep(spec, base, folder, slug(self.config.name)).claim_folder()
        except (ConfigError, OSError) as err:
            self.log_pane.add("error", str(err))
            self.notify(str(err).splitlines()[0], severity="error", timeout=8)
            return
        try:
            pid = start_sweep(folder, {**base, "sweep": self.sweep_section}, self.runs_dir or str(default_runs_dir()))
        except OSError as err:
            self.notify(f"could not start the sweep: {err}", severity="error")
            return
        self.log_pane.add("info", f"sweep {self.config.name}: {spec.method}, {spec.trials} trials of val {spec.metric}, "
                                  f"running in the background (pid {pid}; log {folder / 'sweep.log'})")
        self.push_screen(RunsScreen(folder, sort=spec.metric, title=f"sweep {self.config.name} (pid {pid})"),
                         self.take_run)

    sanity_pending = False  # `o` started a sanity check; its RunFinished says how it went

    def action_sanity_check(self) -> None:
        """o: train the setup on one batch only (train.overfit_batches: 1). A model, loss and lr that can
        learn drive that batch's loss near 0; the log says whether it did (the workflow's first debug step)."""
        if self.history.state in p.ACTIVE_STATES:
            self.notify("a run is active: stop it (x) first, then o checks the setup on one batch", severity="warning")
            return
        if self.problem:
            self.notify(f"fix this first: {self.problem}", severity="error")
            return
        if not self.bridge.ready:
            self.notify("still loading torch: press o again in a moment")
            return
        plain = self.config.to_dict()
        plain["name"] = f"{self.config.name}-overfit"
        plain["train"] = {**plain["train"], "overfit_batches": 1, "epochs": SANITY_STEPS,
                          "early_stop_metric": ""}
        self.sanity_pending = True
        self.starting = True
        self.bridge.send(p.Start(config=plain, runs_dir=self.runs_dir, origin={"preset": self.preset_ref}))
        self.log_pane.add("info", f"sanity check: training on one batch for {SANITY_STEPS} steps; a setup that can "
                                  f"learn takes its loss below {SANITY_LOSS}")
        self.screen.add_class("show-charts")
        self.refresh_status()

    def on_engine_RunFinished(self, event: p.RunFinished) -> None:
        if not (self.sanity_pending and event.run_id.endswith("-overfit")):
            return
        self.sanity_pending = False
        loss = (event.summary.get("val") or {}).get("loss")  # evaluated on that same batch
        if event.state != p.FINISHED or loss is None:
            self.log_pane.add("warning", f"sanity check ended {event.state} before it could say anything")
        elif loss < SANITY_LOSS:
            self.log_pane.add("info", f"sanity check passed: loss {loss:.3g} on one batch after {event.summary.get('steps')} "
                                      "steps: the model, loss and optimizer can learn. Now train on all the data (space)")
        else:
            self.log_pane.add("warning", f"sanity check failed: the loss of one batch only went down to {loss:.3g} in "
                                         f"{event.summary.get('steps')} steps. Check the lr (f finds one), the loss for "
                                         "this task, and regularisation (dropout, weight decay) or a model too small")

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
            self.log_pane.add("error", f"the setup of {record.run_id} does not load: {err}")
            self.notify(err.first_line, severity="error")
            return
        if kind == "continue":
            checkpoint = Path(record.path) / "checkpoints" / f"{result[2]}.pt"
            config = dataclasses.replace(config, model=dataclasses.replace(config.model, pretrained=str(checkpoint)))
        self.show_setup(config)
        self.preset_ref = record.preset
        if kind == "continue":
            self.log_pane.add("info", f"continuing from {record.run_id} ({result[2]}.pt) as a new run")
            self.action_toggle_run()
        else:
            self.log_pane.add("info", f"loaded the setup of run {record.run_id}")
        self.refresh_status()


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
