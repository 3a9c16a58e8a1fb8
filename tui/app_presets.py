"""The app's preset actions: ctrl+s saves the current setup as a user preset, ctrl+o opens one."""

from __future__ import annotations

import dataclasses

from torchtui.engine import presets
from torchtui.engine.schema import ConfigError


class PresetActions:
    """Mixed into TorchTUI: uses its config, problems, deck, log pane and notify."""

    preset_ref = ""  # the preset the setup came from (name or file), recorded in each run's origin.json
    sweep_section = None  # the preset's sweep: section, when it has one (S runs it)

    def action_save_preset(self) -> None:
        from torchtui.tui.screens.save_preset import SavePresetScreen

        def save(name: str | None) -> None:
            if not name:
                return
            try:
                path = presets.save(dataclasses.replace(self.config, name=name), name, overwrite=True)
            except (ConfigError, OSError) as err:
                self.log_pane.add("error", f"could not save preset '{name}': {err}")
                self.notify(str(err), severity="error")
                return
            self.log_pane.add("info", f"saved preset '{name}' to {path}")
            self.notify(f"saved preset {name}")

        if self.problem:
            self.notify(f"fix this first: {self.problem}", severity="error")
            return
        self.push_screen(SavePresetScreen(self.config.name), save)

    def action_open_preset(self) -> None:
        from torchtui.tui.screens.open_preset import OpenPresetScreen

        self.push_screen(OpenPresetScreen(), lambda path: self.open_preset(path) if path else None)

    def show_setup(self, config) -> None:
        """Make `config` the setup in the panes (an opened preset, or the run the app attached to)."""
        self.config, self.config_problems = config, []
        self._show_problems()
        self.sub_title = config.name
        self.deck.fill(config)
        self._request_previews()

    def open_preset(self, path: str) -> bool:
        """Load a preset file into the panes; a bad one is reported (the same line the CLI prints) and the
        current setup stays as it was."""
        try:
            config, self.sweep_section, _, _ = presets.load_with_sweep(path)
        except ConfigError as err:
            self.log_pane.add("error", str(err))
            self.notify(err.first_line, severity="error")
            return False
        self.show_setup(config)
        self.preset_ref = path
        self.log_pane.add("info", f"opened preset {config.name} ({path})")
        if self.sweep_section is not None:
            self.log_pane.add("info", "it holds a sweep: S runs it in the background and shows its leaderboard")
        self.refresh_status()
        return True
