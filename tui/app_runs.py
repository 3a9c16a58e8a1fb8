"""The app's runs actions: `b` opens the Runs screen; a run picked there becomes the setup, or a new branch."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from torchtui.engine import protocol as p
from torchtui.engine.config import from_dict
from torchtui.engine.runs import default_runs_dir
from torchtui.engine.schema import ConfigError


class RunsActions:
    """Mixed into TorchTUI: uses its runs_dir, history, show_setup, log pane and action_toggle_run."""

    def action_runs(self) -> None:
        from torchtui.tui.screens.runs import RunsScreen

        self.push_screen(RunsScreen(self.runs_dir or default_runs_dir()), self.take_run)

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
