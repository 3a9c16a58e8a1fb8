"""Command palette provider: every key-bound action of the app, searchable by its description."""

from __future__ import annotations

from functools import partial

from textual.command import DiscoveryHit, Hit, Hits, Provider


class ActionsProvider(Provider):
    """Lists the app's bindings (by description) so every action is reachable without its key."""

    def _actions(self):
        app = self.app
        for binding in app.BINDINGS:
            if binding.description and binding.action not in ("command_palette",):
                yield binding, partial(app.run_action, binding.action)

    async def discover(self) -> Hits:
        for binding, run in self._actions():
            yield DiscoveryHit(binding.description, run, help=f"key: {binding.key_display or binding.key}")

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for binding, run in self._actions():
            score = matcher.match(binding.description)
            if score > 0:
                yield Hit(score, matcher.highlight(binding.description), run,
                          help=f"key: {binding.key_display or binding.key}")
