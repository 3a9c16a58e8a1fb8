"""The status bar: run state, folder, epoch/step, samples/s, ETA, device memory, and the current problem."""

from __future__ import annotations

from rich.text import Text
from textual.widget import Widget

from torchtui.engine.formatting import DATA_WAIT_HINT, data_wait_text, fmt_bytes, fmt_duration

STATE_STYLES = {"running": "bold green", "paused": "bold yellow", "finished": "bold cyan",
                "stopped": "bold magenta", "diverged": "bold red", "failed": "bold red", "idle": "dim"}


class StatusBar(Widget):
    """One or two lines at the bottom: what the run is doing, or which field blocks it and why.

    Its numbers change ten times a second while a run trains: it repaints itself alone, and asks for a layout
    only when it needs more lines (see update). As a Static, every update laid out the whole screen (1,100 widgets,
    the better part of a second on a busy 2-core machine): the UI thread did little else, and keys waited.
    """

    DEFAULT_CSS = """
    StatusBar { height: auto; max-height: 3; padding: 0 1; background: $boost; }
    """

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self._text = Text()

    @property
    def content(self) -> Text:
        return self._text

    def render(self) -> Text:
        return self._text

    def update(self, text: Text) -> None:
        """Repaint; lay out only when the bar needs more lines than it has, or a line of its own (a problem, a
        notice) comes or goes. Numbers changing length at 80 columns wrapped the run's line or not: the bar grew
        and shrank a line, and each time the screen was laid out and every chart rebuilt at its new size."""
        breaks = self._text.plain.count("\n")
        self._text = text
        self.refresh(layout=text.plain.count("\n") != breaks or self._lines(text) > self.size.height)

    def _lines(self, text: Text) -> int:
        """Lines `text` takes at this width, wrapped (what `height: auto` lays out)."""
        width = self.content_region.width if self.is_mounted else 0
        return len(text.wrap(self.app.console, width)) if width > 0 else text.plain.count("\n") + 1

    def show(self, history, problem: str = "", notice: str = "", typing: str = "", pending: str = "") -> None:
        text = Text()
        state = history.state or "idle"
        text.append(f" {state} ", style=STATE_STYLES.get(state, "bold"))
        started, stats = history.started, history.last_stats
        if started is not None and self.size.width >= 100:  # narrow: the numbers matter more than the name
            text.append(f"  {started.run_id}", style="dim")
        if stats is not None and stats.step and started is not None:
            endless = not started.total_steps  # train.epochs 0: until stopped
            text.append(f"  epoch {stats.epoch:.2f}/{started.epochs or '∞'}  "
                        f"step {stats.step[-1]}/{started.total_steps or '∞'}")
            if state != "paused":  # the speed and ETA of the last steps would stand still, as if current
                text.append(f"  {stats.samples_per_s:,.0f} samples/s  "
                            f"ETA {'∞' if endless else fmt_duration(stats.eta_s)}")
            if stats.mem_allocated is not None:
                text.append(f"  mem {fmt_bytes(stats.mem_allocated)}/{fmt_bytes(stats.mem_reserved)}")
            if stats.data_wait is not None:
                text.append(f"  {data_wait_text(stats.data_wait)}",
                            style="bold yellow" if stats.data_wait > DATA_WAIT_HINT else "")
        if pending:  # a live value typed while the run trains, not applied yet
            text.append(f"  ⏎ {pending} not applied: Enter applies, esc reverts", style="bold yellow")
        elif typing:  # where keys go: a field (esc gives them back to the app) or, without this, the app
            text.append(f"  ⌨ {typing} (esc: keys to the app)", style="bold cyan")
        if problem:
            text.append("\n")
            text.append(f"✗ {problem}", style="bold red")
        elif notice:
            text.append("\n")
            text.append(notice, style="italic")
        self.update(text)
