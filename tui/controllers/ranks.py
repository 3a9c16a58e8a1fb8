"""The per-rank view's controller: a data-parallel run's RankStats to the strip under the charts."""

from __future__ import annotations

from torchtui.engine import protocol as p
from torchtui.tui.controllers import Controller


class RanksController(Controller):
    """Shows the strip for runs of several processes (RunStarted.world_size) and feeds it each flush's figures.
    What comes before the strip is mounted (it comes with the charts, after the first frame) is kept for it."""

    HANDLES = {p.RunStarted: "on_run_started", p.RankStats: "on_rank_stats"}

    def __init__(self, app):
        super().__init__(app)
        self.world_size = 1
        self.latest: p.RankStats | None = None

    @property
    def strip(self):
        from torchtui.tui.widgets.rank_strip import RankStrip

        found = self.main.query(RankStrip)
        return found.first() if found else None

    def on_run_started(self, event: p.RunStarted) -> None:
        self.world_size, self.latest = event.world_size, None
        if self.strip is not None:
            self.strip.start(event.world_size)

    def on_rank_stats(self, event: p.RankStats) -> None:
        started = self.history.started
        if started is not None and started.run_id != event.run_id:
            return
        self.latest = event
        if self.strip is not None:
            self.strip.show(event)

    def mounted(self, strip) -> None:
        """The strip is on screen: what the run said so far."""
        strip.start(self.world_size)
        if self.latest is not None:
            strip.show(self.latest)
