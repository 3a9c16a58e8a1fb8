"""The log pane: engine events, live changes, warnings and errors (an error's traceback opens with t)."""

from __future__ import annotations

import time
from collections import deque

from rich.text import Text
from textual.events import Resize
from textual.widgets import RichLog

LEVEL_STYLES = {"info": "", "warning": "yellow", "error": "bold red", "change": "cyan"}
MAX_LINES = 2000  # bounded: a long run's log must not grow the app's memory
MIN_WIDTH = 20  # the narrowest a line is wrapped to (a pane not yet laid out)
REWRAP_LINES = 300  # lines written again at a new width: all 2,000 took 0.3 s of the UI thread, these ~45 ms


def stamp() -> str:
    """A line's time (the snapshot tests fix it)."""
    return time.strftime("%H:%M:%S ")


class LogPane(RichLog):
    """Timestamped lines; keeps the last error with a traceback for the traceback screen."""

    # The border was $panel, 1.04:1 against the background once a 256-colour terminal rounded both (invisible);
    # the muted foreground stays above 3:1 in the dark and light themes (tests/tui/test_log_pane.py).
    DEFAULT_CSS = """
    LogPane { height: 8; border: round $foreground-muted; }
    """

    def __init__(self, **kwargs):
        # min_width: RichLog renders at least 78 columns by default, so beside the setup (58 at 120 columns) a
        # line ran past the edge instead of wrapping; lines wrap at the pane's width as it is when written.
        super().__init__(max_lines=MAX_LINES, wrap=True, markup=False, min_width=MIN_WIDTH, **kwargs)
        self.border_title = "log"
        self.last_error: tuple[str, str] | None = None
        self.lines_written: list[str] = []  # plain text, for tests and copy-out
        self._texts: deque[Text] = deque(maxlen=REWRAP_LINES)  # the last lines, to wrap again at a new width
        self._wrapped_at = 0  # the pane's width when its lines were wrapped

    def add(self, level: str, message: str, traceback: str = "") -> None:
        line = Text(stamp(), style="dim")
        line.append(message, style=LEVEL_STYLES.get(level, ""))
        if traceback:
            self.last_error = (message, traceback)
            line.append("  (t: traceback)", style="dim")
        self.write(line)
        self._texts.append(line)
        self.lines_written.append(message)
        del self.lines_written[:-MAX_LINES]

    def on_resize(self, event: Resize) -> None:
        """RichLog wraps a line once, at the width it is written at: when the width changes (the terminal
        resized, the setup hidden or shown) the last REWRAP_LINES are written again at the new one (the
        scrollback grows back as lines come). RichLog's own handler runs after this one and renders lines
        written before the first layout."""
        if not self._size_known:
            self._wrapped_at = event.size.width
            return
        if event.size.width != self._wrapped_at:
            self._wrapped_at = event.size.width
            self.clear()
            for line in self._texts:
                self.write(line)
