"""The Footer, showing only the keys that matter now: what starts a run while idle, what steers it while it
trains; more of them on wide terminals. Every key still works, and `?` lists them all."""

from __future__ import annotations

from textual.widgets import Footer
from textual.widgets._footer import FooterKey

# Footer order follows keys.BINDINGS; these say which actions show in which state (others: `?`, ctrl+p).
IDLE = ("toggle_run", "step", "toggle_view", "runs", "open_preset", "help", "quit")
ACTIVE = ("toggle_run", "lr_scale(2.0)", "lr_scale(0.5)", "stop", "toggle_view", "help", "quit")
PAUSED = ("step",)  # also shown while paused: a single step
WIDE = ("evaluate", "checkpoint", "detach", "runs", "restart", "save_preset", "log_scale", "open_preset")
WIDE_COLUMNS = 120


class ContextFooter(Footer):
    """A compact Footer filtered by the run's state; `follow(state)` recomposes it when the state changes."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._shown_for: tuple = ()

    def shown(self) -> set[str]:
        from torchtui.engine.protocol import ACTIVE_STATES, PAUSED as PAUSED_STATE

        state = getattr(self.app, "history", None) and self.app.history.state
        actions = set(ACTIVE if state in ACTIVE_STATES else IDLE)
        if state == PAUSED_STATE:
            actions |= set(PAUSED)
        if self.app.size.width >= WIDE_COLUMNS:
            actions |= set(WIDE)
        return actions

    def compose(self):
        shown = self.shown()
        kept = [widget for widget in super().compose()
                if not isinstance(widget, FooterKey) or widget.action in shown or "-command-palette" in widget.classes]
        self.styles.grid_size_columns = len(kept)
        yield from kept

    def follow(self, state: str | None, width: int) -> None:
        """Recompose when what it shows would change (state, or crossing the wide width)."""
        context = (state, width >= WIDE_COLUMNS)
        if context != self._shown_for:
            self._shown_for = context
            if self.is_attached:  # through the screen: the Footer recomposes in its own context then
                self.screen.refresh_bindings()
