"""ConfirmScreen: a yes/no question in a modal dialog that dismisses with True or False (or a third choice)."""

from __future__ import annotations

from rich.cells import cell_len
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Label, Static


class ConfirmScreen(ModalScreen[bool]):
    """Ask `message`; y/enter (or the Yes button) gives True, n/escape (or No) gives False; `extra`
    (key, label, value) adds a third button that gives `value`."""

    DEFAULT_CSS = """
    ConfirmScreen { align: center middle; }
    ConfirmScreen > #dialog {
        max-width: 100%; height: auto; max-height: 100%;
        border: thick $warning; background: $surface; padding: 1 2;
    }
    ConfirmScreen #title { text-style: bold; width: 100%; margin-bottom: 1; }
    ConfirmScreen #message { width: 100%; }
    ConfirmScreen #buttons { height: auto; width: 100%; align-horizontal: right; margin-top: 1; }
    ConfirmScreen Button { margin-left: 2; min-width: 10; }
    ConfirmScreen #buttons.-stacked { layout: vertical; }
    ConfirmScreen #buttons.-stacked Button { width: 100%; margin-left: 0; }
    """
    WIDTH = 64  # the dialog's width, unless its buttons need more

    BINDINGS = [
        Binding("y", "answer(True)", "Yes", id="confirm.yes"),
        # Enter reaches here only when no button has focus; a focused button handles it itself,
        # so tabbing to No and pressing enter answers No, as a user would expect.
        Binding("enter", "answer(True)", "Yes", show=False, id="confirm.enter"),
        Binding("n", "answer(False)", "No", id="confirm.no"),
        Binding("escape", "answer(False)", "Cancel", id="confirm.cancel"),
    ]

    def __init__(self, message: str, title: str = "Are you sure?",
                 yes: str = "Yes", no: str = "No", extra: tuple[str, str, str] | None = None) -> None:
        super().__init__()
        self.extra = extra
        self.message = message
        self.title_text = title
        self.yes_label = yes
        self.no_label = no

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog"):
            yield Label(self.title_text, id="title")
            # markup=False: messages quote preset names and paths, which may contain '['.
            yield Static(self.message, id="message", markup=False)
            with Horizontal(id="buttons"):
                if self._is_alias():  # a second key for yes (x x, r r): named on the yes button, not a twin of it
                    yield Button(f"{self.yes_label} (y, {self.extra[0]})", variant="warning", id="yes")
                else:
                    yield Button(f"{self.yes_label} (y)", variant="warning", id="yes")
                    if self.extra is not None:
                        yield Button(f"{self.extra[1]} ({self.extra[0]})", variant="primary", id="extra")
                yield Button(f"{self.no_label} (n)", variant="default", id="no")

    def _is_alias(self) -> bool:
        return self.extra is not None and self.extra[2] is True and self.extra[1] == self.yes_label

    def on_mount(self) -> None:
        self.query_one("#yes", Button).focus()
        self._fit(self.app.size.width)

    def on_resize(self, event) -> None:
        self._fit(event.size.width)

    def _fit(self, width: int) -> None:
        """Widen the dialog to its buttons, or stack them where the terminal is too narrow: three buttons in
        64 columns clipped the last to one character."""
        # A button is its label plus 2, at least 10 wide, 2 from the one before; the dialog adds 6 (border, padding).
        need = sum(max(10, cell_len(str(button.label)) + 2) + 2 for button in self.query(Button)) + 6
        self.query_one("#dialog").styles.width = max(self.WIDTH, min(need, width))
        self.query_one("#buttons").set_class(need > width, "-stacked")

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        self.dismiss(self.extra[2] if event.button.id == "extra" else event.button.id == "yes")

    def on_key(self, event) -> None:
        if self.extra is not None and event.key == self.extra[0]:
            event.stop()
            self.dismiss(self.extra[2])

    def action_answer(self, answer: bool | str) -> None:
        self.dismiss(answer)
