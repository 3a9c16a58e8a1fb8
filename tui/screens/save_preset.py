"""SavePresetScreen: choose a user preset name, checked and confirmed before any file is written."""

from __future__ import annotations

import re

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, Static

from torchtui.engine import presets
from torchtui.tui.screens.confirm import ConfirmScreen
from torchtui.tui.screens.open_preset import home_relative

# The name becomes a file name: no separators, and no leading dot (a hidden file the picker would miss).
VALID_NAME = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9_.-]*")
MAX_NAME = 64


def name_problem(name: str, builtin_names: set[str]) -> str:
    """Why `name` cannot be a user preset's name, or "" when it can."""
    if not name:
        return "Type a name for the preset"
    if len(name) > MAX_NAME:
        return f"Names are at most {MAX_NAME} characters"
    if not VALID_NAME.fullmatch(name):
        return "Use letters, digits, '-', '_' and '.' (not first)"
    if name in builtin_names:
        return f"'{name}' is a built-in preset; choose another name"
    return ""


def free_name(suggested: str, known: list) -> str:
    """`suggested`, or `suggested-2`, -3 … when it is a built-in's name, which name_problem refuses (a user
    preset by that name would shadow the built-in): the name offered is one Enter accepts."""
    builtin = {p.name for p in known if p.builtin}
    if not suggested or suggested not in builtin:
        return suggested
    taken = {p.name for p in known}
    return next(f"{suggested}-{n}" for n in range(2, 10_000) if f"{suggested}-{n}" not in taken)


class SavePresetScreen(ModalScreen[str | tuple | None]):
    """Dismisses with a usable, confirmed preset name, or None; saving is the caller's job.

    Given `epochs` (the setup trains until stopped, the app's way to try a toy preset), it also asks for the
    saved preset's length, prefilled with `epochs`, and dismisses with (name, epochs): a preset with epochs 0
    would never end under `torchtui train`."""

    DEFAULT_CSS = """
    SavePresetScreen { align: center middle; }
    SavePresetScreen > #dialog {
        width: 64; max-width: 100%; height: auto; max-height: 100%;
        border: thick $primary; background: $surface; padding: 1 2;
    }
    SavePresetScreen #title { text-style: bold; margin-bottom: 1; }
    SavePresetScreen #where { color: $text-muted; width: 100%; }
    SavePresetScreen #error { color: $error; height: auto; width: 100%; }
    SavePresetScreen #error.-empty { display: none; }
    SavePresetScreen #buttons { height: auto; width: 100%; align-horizontal: right; margin-top: 1; }
    SavePresetScreen Button { margin-left: 2; min-width: 10; }
    """

    BINDINGS = [Binding("escape", "cancel", "Cancel", id="save_preset.cancel")]

    def __init__(self, suggested: str = "", epochs: int | None = None) -> None:
        super().__init__()
        self.suggested = free_name(suggested, presets.list_presets()) if suggested else suggested
        self.epochs = epochs

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog"):
            yield Label("Save preset", id="title")
            yield Input(self.suggested, placeholder="preset name", id="name")
            if self.epochs is not None:
                yield Static("This setup trains until you stop it; the preset gets a length (epochs), what "
                             "`torchtui train` runs:", id="length-note", markup=False)
                yield Input(str(self.epochs), placeholder="epochs", id="epochs", type="integer")
            yield Static("", id="error", classes="-empty", markup=False)
            yield Static(f"Saved in {home_relative(presets.user_dir())}", id="where", markup=False)
            with Horizontal(id="buttons"):
                yield Button("Save", variant="primary", id="save")
                yield Button("Cancel", id="cancel")

    def on_mount(self) -> None:
        self.query_one("#name", Input).focus()

    def show_error(self, text: str) -> None:
        error = self.query_one("#error", Static)
        error.update(text)
        error.set_class(not text, "-empty")

    def on_input_changed(self, event: Input.Changed) -> None:
        # A stale error next to a name the user is already fixing reads as if the new name were wrong.
        self.show_error("")

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.submit()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        if event.button.id == "save":
            self.submit()
        else:
            self.dismiss(None)

    def action_cancel(self) -> None:
        self.dismiss(None)

    def answer(self, name: str):
        return name if self.epochs is None else (name, self.length())

    def length(self) -> int | None:
        text = self.query_one("#epochs", Input).value.strip()
        return int(text) if text.isdigit() and int(text) > 0 else None

    def submit(self) -> None:
        name = self.query_one("#name", Input).value.strip()
        if self.epochs is not None and self.length() is None:
            self.show_error("Give the preset a length: a whole number of epochs, 1 or more")
            self.query_one("#epochs", Input).focus()
            return
        if name.endswith((".yaml", ".yml")):  # people type file names; the suffix is added on save
            name = name.rsplit(".", 1)[0]
        known = presets.list_presets()
        problem = name_problem(name, {p.name for p in known if p.builtin})
        if problem:
            self.show_error(problem)
            self.query_one("#name", Input).focus()
            return
        existing = next((p for p in known if not p.builtin and p.name == name), None)
        if existing is None:
            self.dismiss(self.answer(name))
            return

        def overwrite(confirmed: bool | None) -> None:
            if confirmed:
                self.dismiss(self.answer(name))
            else:  # stay open so another name can be typed
                self.query_one("#name", Input).focus()

        message = f"A user preset named '{name}' already exists:\n{home_relative(existing.path)}\nReplace it?"
        self.app.push_screen(ConfirmScreen(message, title="Overwrite preset?", yes="Overwrite", no="Keep"),
                             overwrite)
