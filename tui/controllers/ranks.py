"""The per-rank view's controller: a data-parallel run's RankStats to the strip under the charts."""

from __future__ import annotations

from torchtui.engine import protocol as p
from torchtui.tui.controllers import Controller


class RanksController(Controller):
    """Shows the strip for runs of several processes (RunStarted.world_size) and feeds it each flush's figures."""

    HANDLES = {p.RunStarted: "on_run_started", p.RankStats: "on_rank_stats"}

    @property
    def strip(self):
        from textual.css.query import NoMatches

        from torchtui.tui.widgets.rank_strip import RankStrip

        try:
            return self.main.query_one(RankStrip)
        except NoMatches:  # the screen is not composed yet
            return None

    def on_run_started(self, event: p.RunStarted) -> None:
        if self.strip is not None:
            self.strip.start(event.world_size)

    def on_rank_stats(self, event: p.RankStats) -> None:
        started = self.history.started
        if self.strip is not None and (started is None or started.run_id == event.run_id):
            self.strip.show(event)
