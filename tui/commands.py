"""Command palette provider: every key-bound action of the app, searchable by its description."""

from __future__ import annotations

from functools import partial

from textual.command import DiscoveryHit, Hit, Hits, Provider


class ActionsProvider(Provider):
    """Lists the app's bindings (by description) so every action is reachable without its key."""

    def _actions(self):
        """(description, run, help text): the app's bindings, then its keyless palette actions."""
        app = self.app
        for binding in app.BINDINGS:
            if binding.description and binding.action not in ("command_palette",):
                yield binding.description, partial(app.run_action, binding.action), \
                    f"key: {binding.key_display or binding.key}"
        for description, action in getattr(app, "PALETTE_ACTIONS", ()):
            yield description, partial(app.run_action, action), "in the Model pane: a, d, [ and ]"

    async def discover(self) -> Hits:
        for description, run, help_text in self._actions():
            yield DiscoveryHit(description, run, help=help_text)

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for description, run, help_text in self._actions():
            score = matcher.match(description)
            if score > 0:
                yield Hit(score, matcher.highlight(description), run, help=help_text)
