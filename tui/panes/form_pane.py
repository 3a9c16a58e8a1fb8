"""FormPane: a setup pane built around one ConfigForm, which it delegates to and relays edits from."""

from __future__ import annotations

from typing import Any, ClassVar

from textual.containers import VerticalScroll

from torchtui.tui.panes.form import ConfigChanged, ConfigForm, FieldCommitted


class FormPane(VerticalScroll):
    """Subclasses set SECTION and self.form, and may react in `after_set` and `on_edit`."""

    # Never focused itself: focusing a pane re-styled its 460 widgets (1.8 s of the UI thread on a 2-core
    # machine, keys waiting behind it). Keys go to the app, or to a field (tab goes into the pane's first).
    can_focus = False

    SECTION: ClassVar[str] = ""
    form: ConfigForm

    def value(self) -> dict:
        return self.form.value()

    def set_values(self, section: Any, force: bool = False) -> None:
        self.form.set_values(section, force)
        self.after_set()

    def show_problems(self, problems: list[str]) -> None:
        self.form.show_problems(problems)

    def focus_first(self) -> bool:
        return self.form.focus_first()

    def on_config_form_changed(self, event: ConfigForm.Changed) -> None:
        event.stop()
        self.on_edit(event.path)
        self.post_message(ConfigChanged(self.SECTION, event.path))

    def on_config_form_committed(self, event: ConfigForm.Committed) -> None:
        event.stop()
        self.post_message(FieldCommitted(self.SECTION, event.path))

    def after_set(self) -> None:
        """Called after the form was filled from a config (e.g. to show only relevant fields)."""

    def on_edit(self, path: str) -> None:
        """Called when the user edited the field at `path`, before ConfigChanged is posted."""
