"""LrFindScreen: the LR range test's curve and suggestion; `a` hands the suggested lr back to the app."""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Label, Static

from torchtui.tui.charts.lr_find import LrFindChart, lr_text


def rounded(lr: float) -> float:
    """The lr to apply: two significant digits (0.0148 → 0.015), as one would type it."""
    return float(f"{lr:.2g}")


class LrFindScreen(ModalScreen[float | None]):
    """Waits for the app's `show(LrFound)`; dismisses with the lr to apply, or None (escape)."""

    DEFAULT_CSS = """
    LrFindScreen { align: center middle; }
    LrFindScreen > #dialog {
        width: 100%; max-width: 140; height: 100%; max-height: 40;
        border: thick $primary; background: $surface; padding: 0 1;
    }
    LrFindScreen #lr-title { text-style: bold; width: 100%; }
    LrFindScreen LrFindChart { height: 1fr; min-height: 6; }
    LrFindScreen #lr-info { height: auto; width: 100%; }
    LrFindScreen #lr-hint { height: 1; width: 100%; color: $text-muted; }
    """

    BINDINGS: ClassVar = [
        Binding("a", "apply", "Apply lr", id="lr_find.apply"),
        Binding("r", "rerun", "Run again", id="lr_find.rerun"),
        Binding("escape", "close", "Close", id="lr_find.close"),
    ]

    def __init__(self, source: str, target: str, rerun: Callable[[], None]):
        """`source`: what the test runs on (a run's weights or the setup); `target`: where `a` puts the lr."""
        super().__init__()
        self.source, self.target, self.rerun = source, target, rerun
        self.found = None

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog"):
            yield Label(f"LR range test · {self.source}", id="lr-title", markup=False)
            yield LrFindChart(id="lr-chart-find")
            yield Static("", id="lr-info", markup=False)
            yield Static("", id="lr-hint", markup=False)

    def on_mount(self) -> None:
        self.chart = self.query_one(LrFindChart)
        if self.found is not None:  # the reply came before the screen was up
            self.show(self.found)
        self._hint()

    def show(self, found) -> None:
        """Draw an LrFound reply."""
        self.found = found
        if not hasattr(self, "chart"):  # before on_mount (is_mounted is still False inside it): it shows it then
            return
        self.chart.show(found)
        if found.run_id:
            self.source = f"from run {found.run_id} at step {found.step:,} (the run itself is untouched)"
            self.query_one("#lr-title", Label).update(f"LR range test · {self.source}")
        info = self.query_one("#lr-info", Static)
        if found.error:
            info.update(found.error.splitlines()[0] + ("  (esc, then t: the traceback)" if found.traceback else ""))
        else:
            how = "steepest descent of the smoothed loss" if found.steepest_lr is not None else "the minimum ÷ 10"
            parts = [f"suggested lr {lr_text(found.suggested_lr)} ({how})" if found.suggested_lr is not None
                     else "no suggestion: the loss never fell (widen the range)",
                     f"min÷10 {lr_text(found.minimum_lr)}", f"{len(found.points)} steps in {found.seconds:.2g} s"]
            info.update(" · ".join(parts) + (f"\nstopped: {found.stopped}" if found.stopped else ""))
        self._hint()

    def _hint(self) -> None:
        lr = self.found.suggested_lr if self.found is not None and not self.found.error else None
        apply = f"a apply {lr_text(rounded(lr))} to {self.target}  ·  " if lr is not None else ""
        self.query_one("#lr-hint", Static).update(f"{apply}r run again  ·  esc close")

    def action_apply(self) -> None:
        if self.found is None:
            self.notify("the LR range test is still running")
        elif self.found.suggested_lr is None:
            self.notify("there is no suggested lr to apply", severity="warning")
        else:
            self.dismiss(rounded(self.found.suggested_lr))

    def action_rerun(self) -> None:
        self.found = None
        self.chart.show(None)
        self.query_one("#lr-info", Static).update("")
        self._hint()
        self.rerun()

    def action_close(self) -> None:
        self.dismiss(None)
