"""The Footer, showing only the keys that act now: what starts a run while idle, what steers it while it trains;
more of them as the width allows, never one cut off. Every key still works, and `?` lists them all."""

from __future__ import annotations

from rich.cells import cell_len
from textual.widgets import Footer
from textual.widgets._footer import FooterKey

from torchtui.tui.keys import BINDINGS, FOOTER


def _actions(context: str) -> tuple[str, ...]:
    """The actions of the bindings keys.FOOTER lists for a context (the actions themselves live in BINDINGS)."""
    return tuple(binding.action for binding in BINDINGS if binding.id in FOOTER[context])


# Footer order follows keys.BINDINGS; keys.FOOTER says which show in which state (others: `?`, ctrl+p).
IDLE, ACTIVE, PAUSED, MORE_IDLE, MORE_ACTIVE = (
    _actions(context) for context in ("idle", "active", "paused", "more-idle", "more-active"))
PALETTE_WIDTH = 12  # the palette key docked at the right: its bar, "^p palette", a column to spare


def key_width(key_display: str, description: str) -> int:
    """Columns a compact FooterKey takes: the key, a space, the description, and its right margin."""
    return cell_len(key_display) + 1 + cell_len(description) + 1


class ContextFooter(Footer):
    """A compact Footer filtered by the run's state and the width; `follow(state, width)` recomposes it when
    either changes what it shows."""

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

    def _state_keys(self) -> tuple[set[str], set[str]]:
        """The actions always shown in the run's state, and those shown as the width allows."""
        state = getattr(self.app, "history", None) and self.app.history.state
        if not state:  # idle, or the first frame: drawn before the protocol is imported
            return set(IDLE), set(MORE_IDLE) - set(IDLE)
        from torchtui.engine.protocol import ACTIVE_STATES
        from torchtui.engine.protocol import PAUSED as PAUSED_STATE

        active = state in ACTIVE_STATES
        base = set(ACTIVE if active else IDLE) | (set(PAUSED) if state == PAUSED_STATE else set())
        return base, set(MORE_ACTIVE if active else MORE_IDLE) - base

    def _fitting(self, keys: list[tuple[str, str, str]]) -> set[str]:
        """Of (action, key display, description) in Footer order, the actions shown: the state's own keys, then
        the others in order while they fit the width (at 120 columns the last one ran under the palette's)."""
        base, more = self._state_keys()
        room = self.app.size.width - PALETTE_WIDTH - sum(key_width(k, d) for a, k, d in keys if a in base)
        shown = set(base)
        for action, key, description in keys:
            if action in more and key_width(key, description) <= room:
                shown.add(action)
                room -= key_width(key, description)
        return shown

    def compose(self):
        widgets = list(super().compose())
        keys = [widget for widget in widgets
                if isinstance(widget, FooterKey) and "-command-palette" not in widget.classes]
        shown = self._fitting([(key.action, key.key_display, key.description) for key in keys])
        kept = [widget for widget in widgets if not isinstance(widget, FooterKey) or widget.action in shown
                or "-command-palette" in widget.classes]
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
        bindings = [(binding, enabled) for _, binding, enabled, _ in self.screen.active_bindings.values()
                    if binding.show]
        shown = self._fitting([(b.action, self.app.get_key_display(b), b.description) for b, _ in bindings])
        return tuple((binding.key, binding.description, binding.action, enabled) for binding, enabled in bindings
                     if binding.action in shown or binding.action == "command_palette")

    def follow(self, state: str | None, width: int) -> None:
        """Recompose when what it shows would change (the state, or the width: more or fewer keys fit)."""
        context = (state, width)
        if context != self._shown_for:
            self._shown_for = context
            if self.is_attached:  # through the screen: the Footer recomposes in its own context then
                self.screen.refresh_bindings()

    def on_resize(self, event) -> None:
        if self._shown_for:
            self.follow(self._shown_for[0], self.app.size.width)
