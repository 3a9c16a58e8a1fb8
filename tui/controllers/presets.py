"""Presets in the app: ctrl+s saves the setup as a user preset (asking for a length when it trains until
stopped), ctrl+o opens one (asking first while a run is active)."""

from __future__ import annotations

import dataclasses

from torchtui.engine import presets
from torchtui.engine import protocol as p
from torchtui.engine.config import SYNTHETIC_SOURCES
from torchtui.engine.run.optim import SPANS_THE_RUN
from torchtui.engine.schema import ConfigError
from torchtui.tui.controllers import Controller

DEFAULT_EPOCHS = 20  # a saved preset's length when nothing says better (TrainConfig's own default)


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


class PresetController(Controller):
    """Saving and opening presets; the setup controller holds what they fill."""

    def save(self) -> None:
        from torchtui.tui.screens.save_preset import SavePresetScreen

        setup = self.app.setup
        if self.main.problem:
            self.notify(f"fix this first: {self.main.problem}", severity="error")
            return
        # epochs 0 is the app's way to try a toy preset: a saved preset gets a length (it would never end headless)
        length = None if setup.config.train.epochs else self.preset_epochs()

        def save(answer) -> None:
            if not answer:
                return
            name, epochs = answer if isinstance(answer, tuple) else (answer, None)
            config = setup.config
            if epochs is not None:
                config = dataclasses.replace(config, train=dataclasses.replace(config.train, epochs=epochs))
            try:
                config = dataclasses.replace(config, name=name, description=self.saved_description(config))
                path = presets.save(config, name, overwrite=True)
            except (ConfigError, OSError) as err:
                self.log("error", f"could not save preset '{name}': {err}")
                self.notify(str(err), severity="error")
                return
            setup.mark_recorded()
            self.log("info", f"saved preset '{name}' to {path}" + (f" ({epochs} epochs)" if epochs else ""))
            self.notify(f"saved preset {name}")

        self.app.push_screen(SavePresetScreen(setup.config.name, epochs=length), save)

    def preset_epochs(self) -> int:
        """The length the setup's preset gives (what `torchtui train PRESET` runs), else the default."""
        try:
            origin = presets.load(self.app.setup.preset_ref) if self.app.setup.preset_ref else None
        except ConfigError:
            origin = None
        return origin.train.epochs if origin is not None and origin.train.epochs else DEFAULT_EPOCHS

    def saved_description(self, config=None) -> str:
        """The setup's description while it still describes it; once fields were edited since the preset
        it came from was opened, what it was based on and what changed (a description must stay true)."""
        from torchtui.engine.catalog import changed_fields, flatten

        config = config or self.app.setup.config
        ref = self.app.setup.preset_ref
        try:
            origin = presets.load(ref) if ref else None
        except ConfigError:
            origin = None
        if origin is None:
            return config.description
        new = flatten(config.to_dict())
        changed = changed_fields(origin.to_dict(), config.to_dict(), ("name", "description"))
        if not changed:
            return config.description
        shown = ", ".join(f"{k} {new.get(k, '–')}" for k in changed[:4]) + (" …" if len(changed) > 4 else "")
        return f"{origin.name} with {shown}"

    def ask_open(self) -> None:
        from torchtui.tui.screens.open_preset import OpenPresetScreen

        self.app.push_screen(OpenPresetScreen(), lambda path: self.open_asking(path) if path else None)

    def open_asking(self, path: str) -> None:
        """Open a preset; with a run active, first ask: stop that run, or keep it (the panes then show a
        setup the run is not training, which the status bar says until it ends)."""
        from torchtui.tui.screens.confirm import ConfirmScreen

        state = self.history.state
        if state not in p.ACTIVE_STATES:
            self.open(path)
            return

        def answer(choice) -> None:
            if choice is True and self.history.state in p.ACTIVE_STATES:
                self.bridge.send(p.Stop())
                self.open(path)
            elif choice == "later" and self.open(path):
                # True in whatever state the run goes on to (space resumed a paused run, or paused a running one)
                self.main.notice = (f"the panes show {self.app.setup.config.name}; the active run keeps its own "
                                    "setup (r restarts it with this one)")

        self.app.push_screen(ConfirmScreen(f"A run is {state}. Stop it (saving last.pt) and open {path}, or open it "
                                           f"for the next start while the {state} run keeps its own setup?",
                                           title="A run is active", yes="Stop it and open", no="Cancel",
                                           extra=("o", "Open for the next start", "later")), answer)

    def open(self, path: str) -> bool:
        """Load a preset file into the panes; a bad one is reported (the same line the CLI prints) and the
        current setup stays as it was."""
        setup = self.app.setup
        try:
            config, sweep_section, _, _ = presets.load_with_sweep(path)
        except ConfigError as err:
            self.log("error", str(err))
            self.notify(err.first_line, severity="error")
            return False
        setup.sweep_section = sweep_section
        self.app.runs.trial_sweep = None  # S is this preset's sweep now, not a loaded trial's
        config, note = steerable(config, path)
        setup.show_setup(config)
        setup.preset_ref = path
        self.log("info", f"opened preset {config.name} ({path})")
        if note:
            self.log("info", note)
        if sweep_section is not None:
            self.log("info", "it holds a sweep: S runs it in the background and shows its leaderboard")
        return True
