"""HelpScreen: the app's key bindings and a short account of how editing and running fit together."""

from __future__ import annotations

from collections.abc import Iterable

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Label, Static

HOW_IT_WORKS = (
    "The panes on the left edit the experiment: dataset, model, hyperparameters and device. "
    "Space starts training (and pauses or resumes it). While a run is going, learning rate, weight decay "
    "and grad clip apply live; other edits apply when you restart with r. "
    "ctrl+s saves the current settings as a preset, ctrl+o opens one; presets are YAML files you can "
    "also train from the command line with `torchtui train NAME`."
)


def keys_table(bindings: list[tuple[str, str]]) -> Table:
    # Two key/description column pairs once the list is long: an 80x24 terminal then shows every key
    # and the paragraph without scrolling.
    pairs = 2 if len(bindings) > 8 else 1
    per_column = -(-len(bindings) // pairs)
    table = Table.grid(padding=(0, 1), expand=True)
    for _ in range(pairs):
        table.add_column(no_wrap=True, justify="right")
        table.add_column(ratio=1)
    for i in range(per_column):
        cells: list[Text] = []
        for key, description in bindings[i::per_column][:pairs]:
            cells += [Text(key, style="bold"), Text(description)]
        table.add_row(*cells)
    return table


class HelpScreen(ModalScreen[None]):
    """Keys given by the app (so remapped keys show as remapped) above a paragraph; escape, q or ? closes."""

    DEFAULT_CSS = """
    HelpScreen { align: center middle; background: $background; }  /* opaque: no dimmed re-render of the screen below */
    HelpScreen > #dialog {
        width: 80; max-width: 100%; height: auto; max-height: 100%;
        border: thick $primary; background: $surface; padding: 0 1;
    }
    HelpScreen #title { text-style: bold; margin-bottom: 1; }
    HelpScreen VerticalScroll { height: auto; }
    HelpScreen #keys { margin-bottom: 1; }
    HelpScreen #about { color: $text; }
    HelpScreen #hint { color: $text-muted; margin-top: 1; }
    """

    CHROME = 6  # rows outside the scroll area: border 2, title 2, hint 2

    BINDINGS = [Binding("escape,q,question_mark", "close", "Close", id="help.close")]

    def __init__(self, bindings: Iterable[tuple[str, str]], title: str = "torchtui — keys") -> None:
        super().__init__()
        self.key_rows = list(bindings)
        self.heading = title

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog"):
            yield Label(self.heading, id="title")
            # Focusable scroll area: on a short terminal the arrows and pgup/pgdn reach the paragraph.
            with VerticalScroll(id="body"):
                yield Static(keys_table(self.key_rows), id="keys")
                yield Static(HOW_IT_WORKS, id="about", markup=False)
            yield Static("esc, q or ? to close", id="hint")

    def on_mount(self) -> None:
        self.query_one("#body").focus()

    def on_resize(self, event) -> None:
        # CSS has no "auto height, but shrink to fit" for the middle of a dialog, so cap the scroll area
        # here to keep the title and hint on screen in a short terminal.
        self.query_one("#body").styles.max_height = max(3, event.size.height - self.CHROME)

    def action_close(self) -> None:
        self.dismiss(None)
