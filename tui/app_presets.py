"""The app's preset actions: ctrl+s saves the current setup as a user preset, ctrl+o opens one."""

from __future__ import annotations

import dataclasses

from torchtui.engine import presets
from torchtui.engine.config import SYNTHETIC_SOURCES
from torchtui.engine.run.optim import SPANS_THE_RUN
from torchtui.engine.schema import ConfigError


def steerable(config, ref: str, epochs_given: bool = False):
    """A built-in toy preset (synthetic data) trains until stopped in the app: its epochs end in a second or
    two, before pause, step or lr ×2 can be tried. Returns (config, the log line saying so, or "")."""
    try:
        builtin = presets.find(ref)[1] if ref else False
    except ConfigError:
        builtin = False
    train = config.train
    if epochs_given or not builtin or config.data.source not in SYNTHETIC_SOURCES or not train.epochs \
            or train.scheduler in SPANS_THE_RUN:
        return config, ""
    note = (f"{config.name} trains until you stop it here (x; epochs 0 in Hparams): `torchtui train {ref}` runs its "
            f"{train.epochs} epochs")
    return dataclasses.replace(config, train=dataclasses.replace(train, epochs=0)), note


class PresetActions:
    """Mixed into TorchTUI: uses its config, problems, deck, log pane and notify."""

    preset_ref = ""  # the preset the setup came from (name or file), recorded in each run's origin.json
    first_notes: tuple = ()  # what the command line's setup should say once the log exists (see steerable)

    def log_first_notes(self) -> None:
        for note in self.first_notes:
            self.log_pane.add("info", note)
    sweep_section = None  # the preset's sweep: section, when it has one (S runs it)

    def action_save_preset(self) -> None:
        from torchtui.tui.screens.save_preset import SavePresetScreen

        def save(name: str | None) -> None:
            if not name:
                return
            try:
                config = dataclasses.replace(self.config, name=name, description=self.saved_description())
                path = presets.save(config, name, overwrite=True)
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

    def saved_description(self) -> str:
        """The setup's description while it still describes it; once fields were edited since the preset
        it came from was opened, what it was based on and what changed (a description must stay true)."""
        from torchtui.engine.catalog import flatten

        try:
            origin = presets.load(self.preset_ref) if self.preset_ref else None
        except ConfigError:
            origin = None
        if origin is None:
            return self.config.description
        skip = ("name", "description")
        old, new = flatten(origin.to_dict()), flatten(self.config.to_dict())
        changed = [k for k in dict.fromkeys([*old, *new]) if old.get(k) != new.get(k) and k not in skip]
        if not changed:
            return self.config.description
        shown = ", ".join(f"{k} {new.get(k, '–')}" for k in changed[:4]) + (" …" if len(changed) > 4 else "")
        return f"{origin.name} with {shown}"

    def action_open_preset(self) -> None:
        from torchtui.tui.screens.open_preset import OpenPresetScreen

        self.push_screen(OpenPresetScreen(), lambda path: self.open_preset_asking(path) if path else None)

    def open_preset_asking(self, path: str) -> None:
        """Open a preset; with a run active, first ask: stop that run, or keep it (the panes then show a
        setup the run is not training, which the status bar says until it ends)."""
        from torchtui.engine import protocol as p
        from torchtui.tui.screens.confirm import ConfirmScreen

        state = self.history.state
        if state not in p.ACTIVE_STATES:
            self.open_preset(path)
            return

        def answer(choice) -> None:
            if choice is True and self.history.state in p.ACTIVE_STATES:
                self.bridge.send(p.Stop())
                self.open_preset(path)
            elif choice == "later" and self.open_preset(path):
                self.notice = (f"the panes show {self.config.name}; the {self.history.state} run keeps its own "
                               "setup (space resumes it, r restarts with this one)")
                self.refresh_status()

        self.push_screen(ConfirmScreen(f"A run is {state}. Stop it (saving last.pt) and open {path}, or open it for "
                                       f"the next start while the {state} run keeps its own setup?",
                                       title="A run is active", yes="Stop it and open", no="Cancel",
                                       extra=("o", "Open for the next start", "later")), answer)

    def show_setup(self, config) -> None:
        """Make `config` the setup in the panes (an opened preset, or the run the app attached to)."""
        self.config, self.config_problems = config, []
        self._show_problems()
        self.sub_title = config.name
        self.deck.fill(config)
        self._show_parallel()
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
        config, note = steerable(config, path)
        self.show_setup(config)
        self.preset_ref = path
        self.log_pane.add("info", f"opened preset {config.name} ({path})")
        if note:
            self.log_pane.add("info", note)
        if self.sweep_section is not None:
            self.log_pane.add("info", "it holds a sweep: S runs it in the background and shows its leaderboard")
        self.refresh_status()
        return True
