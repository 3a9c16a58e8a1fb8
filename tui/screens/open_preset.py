"""OpenPresetScreen: a filterable picker of built-in and user presets that returns the chosen file's path."""

from __future__ import annotations

from pathlib import Path

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, Label, OptionList, Static
from textual.widgets.option_list import Option

from torchtui.engine import presets
from torchtui.engine.presets import PresetInfo

UNREADABLE = "(unreadable:"


def matches(info: PresetInfo, query: str) -> bool:
    """Every word of `query` appears in the preset's name, kind or description (any case)."""
    haystack = f"{info.name} {'built-in' if info.builtin else 'user'} {info.description}".lower()
    return all(word in haystack for word in query.lower().split())


def row(info: PresetInfo, name_width: int) -> Table:
    # One line per preset so a short terminal still shows most of them; the detail line below the
    # list carries the full description of the highlighted one.
    grid = Table.grid(padding=(0, 1), expand=True)
    grid.add_column(width=name_width, no_wrap=True, overflow="ellipsis")
    grid.add_column(width=8, no_wrap=True)
    grid.add_column(ratio=1, no_wrap=True, overflow="ellipsis")
    kind = Text("built-in", style="dim") if info.builtin else Text("user", style="green")
    grid.add_row(Text(info.name, style="bold"), kind, Text(info.description, style=describe_style(info)))
    return grid


def describe_style(info: PresetInfo) -> str:
    return "red" if info.description.startswith(UNREADABLE) else ""


def home_relative(path: Path) -> str:
    home = Path.home()
    return f"~/{path.relative_to(home)}" if path.is_relative_to(home) else str(path)


class OpenPresetScreen(ModalScreen[str | None]):
    """Dismisses with the chosen preset's path (as str, so user and built-in twins differ), or None."""

    DEFAULT_CSS = """
    OpenPresetScreen { align: center middle; }
    OpenPresetScreen > #dialog {
        width: 96; max-width: 100%; height: auto; max-height: 100%;
        border: thick $primary; background: $surface; padding: 0 1;
    }
    OpenPresetScreen #title { text-style: bold; }
    OpenPresetScreen #filter { margin-bottom: 1; }
    OpenPresetScreen OptionList { height: auto; max-height: 10; border: none; padding: 0; }
    OpenPresetScreen #empty { color: $text-muted; padding: 0 1; }
    OpenPresetScreen #detail { height: 3; margin-top: 1; color: $text-muted; }
    OpenPresetScreen #hint { color: $text-muted; }
    """
    LIST_ROWS = 10
    CHROME = 13  # rows outside the list: border 2, title 1, filter 4, detail 4, hint 1, slack 1

    BINDINGS = [
        Binding("escape", "cancel", "Cancel", id="open_preset.cancel"),
        # The filter Input keeps focus; these reach the list through the screen since Input ignores them.
        Binding("down", "move('cursor_down')", "Next", show=False, id="open_preset.down"),
        Binding("up", "move('cursor_up')", "Previous", show=False, id="open_preset.up"),
        Binding("pagedown", "move('page_down')", "Page down", show=False, id="open_preset.page_down"),
        Binding("pageup", "move('page_up')", "Page up", show=False, id="open_preset.page_up"),
    ]

    def __init__(self, available: list[PresetInfo] | None = None) -> None:
        super().__init__()
        self.available = presets.list_presets() if available is None else available
        self.by_id = {str(p.path): p for p in self.available}
        self.name_width = min(max([len(p.name) for p in self.available] + [4]), 24)

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog"):
            yield Label("Open preset", id="title")
            yield Input(placeholder="type to filter (name, built-in/user, description)", id="filter")
            yield OptionList(id="presets")
            yield Static("", id="empty", markup=False)
            yield Static("", id="detail")
            yield Static("", id="hint")

    def on_mount(self) -> None:
        self.refill("")
        self.query_one("#filter", Input).focus()

    def on_resize(self, event) -> None:
        # CSS has no "auto height, but shrink to fit" for the middle of a dialog, so cap the list here
        # to keep the filter and hint on screen in a short terminal.
        rows = max(3, min(self.LIST_ROWS, event.size.height - self.CHROME))
        self.query_one("#presets", OptionList).styles.max_height = rows

    def refill(self, query: str) -> None:
        # Name matches first (exact, then prefix), so typing a preset's name always picks it.
        q = query.strip().lower()
        shown = sorted((p for p in self.available if matches(p, query)),
                       key=lambda p: (p.name.lower() != q, not p.name.lower().startswith(q)))
        options = self.query_one("#presets", OptionList)
        options.set_options(Option(row(p, self.name_width), id=str(p.path)) for p in shown)
        options.highlighted = 0 if shown else None
        options.display = bool(shown)
        empty = self.query_one("#empty", Static)
        empty.display = not shown
        empty.update(f"No preset matches '{query}'" if self.available else
                     f"No presets found (user presets live in {home_relative(presets.user_dir())})")
        self.show_detail(shown[0] if shown else None)
        self.query_one("#hint", Static).update(
            f"{len(shown)} of {len(self.available)}  ·  ↑↓ move  ·  enter open  ·  esc cancel")

    def show_detail(self, info: PresetInfo | None) -> None:
        text = Text()
        if info is not None:
            text.append(info.description or "(no description)", style=describe_style(info))
            text.append(f"\n{home_relative(info.path)}", style="dim")
        self.query_one("#detail", Static).update(text)

    def on_option_list_option_highlighted(self, event: OptionList.OptionHighlighted) -> None:
        event.stop()
        self.show_detail(self.by_id.get(event.option.id))

    def on_input_changed(self, event: Input.Changed) -> None:
        event.stop()
        self.refill(event.value)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        options = self.query_one("#presets", OptionList)
        if options.highlighted_option is not None:
            self.dismiss(options.highlighted_option.id)
        else:
            self.app.bell()

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        event.stop()
        self.dismiss(event.option.id)

    def action_move(self, action: str) -> None:
        getattr(self.query_one("#presets", OptionList), f"action_{action}")()

    def action_cancel(self) -> None:
        self.dismiss(None)
