"""TracebackScreen: an error's message and its full traceback, scrollable, selectable and copyable."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Label, Static, TextArea


class TracebackScreen(ModalScreen[None]):
    """Shows what failed; the traceback is a read-only TextArea so it can be selected and copied."""

    DEFAULT_CSS = """
    TracebackScreen { align: center middle; }
    TracebackScreen > #dialog {
        width: 100%; max-width: 120; height: 100%; max-height: 40;
        border: thick $error; background: $surface; padding: 0 1;
    }
    TracebackScreen #title { text-style: bold; color: $error; }
    TracebackScreen #message { height: auto; max-height: 5; width: 100%; margin-bottom: 1; }
    TracebackScreen TextArea { height: 1fr; }
    TracebackScreen #footer { height: auto; width: 100%; margin-top: 1; }
    TracebackScreen #hint { width: 1fr; color: $text-muted; padding-top: 1; }
    TracebackScreen Button { margin-left: 2; min-width: 10; }
    """

    BINDINGS = [
        Binding("escape", "close", "Close", id="traceback.close"),
        # ctrl+c inside the TextArea copies a selection; this copies everything, selection or not.
        Binding("c", "copy_all", "Copy all", id="traceback.copy"),
    ]

    def __init__(self, message: str, traceback: str, title: str = "Error") -> None:
        super().__init__()
        self.message = message
        self.traceback_text = traceback
        self.heading = title

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog"):
            yield Label(self.heading, id="title")
            # markup=False: exception messages routinely contain '[' (tensor shapes, lists).
            yield Static(self.message, id="message", markup=False)
            # No soft wrap: tracebacks line up by indentation, and long lines scroll sideways instead.
            text = self.traceback_text.rstrip("\n") or "(no traceback)"
            yield TextArea(text, read_only=True, soft_wrap=False, show_line_numbers=False, id="traceback")
            with Horizontal(id="footer"):
                yield Static("esc close  ·  c copy all", id="hint")
                yield Button("Copy", id="copy")
                yield Button("Close", variant="primary", id="close")

    def on_mount(self) -> None:
        # Start on the last line, at its left edge: the exception line is the one people look for first.
        area = self.query_one("#traceback", TextArea)
        area.focus()
        area.move_cursor((area.document.line_count - 1, 0))

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        if event.button.id == "copy":
            self.action_copy_all()
        else:
            self.dismiss(None)

    def action_copy_all(self) -> None:
        self.app.copy_to_clipboard(f"{self.message}\n\n{self.traceback_text}".strip())
        self.notify("Traceback copied to the clipboard")

    def action_close(self) -> None:
        self.dismiss(None)
