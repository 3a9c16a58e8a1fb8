"""The Footer, showing only the keys that matter now: what starts a run while idle, what steers it while it
trains; more of them on wide terminals. Every key still works, and `?` lists them all."""

from __future__ import annotations

from textual.widgets import Footer
from textual.widgets._footer import FooterKey

from torchtui.tui.keys import BINDINGS, FOOTER


def _actions(context: str) -> tuple[str, ...]:
    """The actions of the bindings keys.FOOTER lists for a context (the actions themselves live in BINDINGS)."""
    return tuple(binding.action for binding in BINDINGS if binding.id in FOOTER[context])


# Footer order follows keys.BINDINGS; keys.FOOTER says which show in which state (others: `?`, ctrl+p).
IDLE, ACTIVE, PAUSED, WIDE = (_actions(context) for context in ("idle", "active", "paused", "wide"))
WIDE_COLUMNS = 120


class ContextFooter(Footer):
    """A compact Footer filtered by the run's state; `follow(state)` recomposes it when the state changes."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._shown_for: tuple = ()
        self._on_keys_shown: list = []
        self._composed: tuple | None = None  # the keys shown, as _keys() gave them

    def when_keys_shown(self, callback) -> None:
        """Call `callback` once the keys are on screen. Textual's Footer composes them a few frames after
        mounting (when the screen's bindings are known); work started before that delays them (the panes'
        build held the first paint's Footer back by 0.35 s)."""
        self._on_keys_shown.append(callback)

    def shown(self) -> set[str]:
        from torchtui.engine.protocol import ACTIVE_STATES
        from torchtui.engine.protocol import PAUSED as PAUSED_STATE

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

    async def recompose(self) -> None:
        # Textual recomposes on every change of the screen's bindings (focus moves, two at start-up); a new
        # set of keys costs ~15 ms of mounting, so only a different one is composed.
        keys = self._keys() if self._bindings_ready and self.is_attached else None
        if keys is None or keys != self._composed:
            self._composed = keys
            await super().recompose()  # the keys are mounted when this returns
        if self._on_keys_shown and self.query(FooterKey):
            self.call_after_refresh(self._keys_painted)

    def _keys_painted(self) -> None:
        """Run the callbacks once the keys have been laid out: a screen refresh lays out and paints together."""
        if not all(key.region for key in self.query(FooterKey)):
            self.call_after_refresh(self._keys_painted)
            return
        callbacks, self._on_keys_shown = self._on_keys_shown, []
        for callback in callbacks:
            self.call_later(callback)  # a coroutine function too

    def _keys(self) -> tuple:
        """What compose would show: each key's binding and whether it is enabled."""
        shown = self.shown()
        return tuple((binding.key, binding.description, binding.action, enabled)
                     for _, binding, enabled, _ in self.screen.active_bindings.values()
                     if binding.show and (binding.action in shown or binding.action == "command_palette"))

    def follow(self, state: str | None, width: int) -> None:
        """Recompose when what it shows would change (state, or crossing the wide width)."""
        context = (state, width >= WIDE_COLUMNS)
        if context != self._shown_for:
            self._shown_for = context
            if self.is_attached:  # through the screen: the Footer recomposes in its own context then
                self.screen.refresh_bindings()
