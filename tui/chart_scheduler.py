"""Which chart to redraw on a tick: those a key just changed first, then the dirty ones in turn.

A plotext build costs 10-50 ms of pure Python; redrawing at most one chart a tick keeps key handling
responsive while five charts update.
"""

from __future__ import annotations

# chart widget id -> the RunHistory group (see RunHistory.apply) that feeds it
CHART_GROUPS = {"loss-chart": "loss", "metric-chart": "metric", "grad-chart": "grad", "lr-chart": "lr",
                "prediction": "prediction"}


class ChartScheduler:
    """Marks charts dirty from the groups an event changed and redraws one per call."""

    def __init__(self, charts: dict):
        self.charts = charts
        self._next = 0
        self._urgent: list[str] = []

    def changed(self, groups: set[str]) -> None:
        for chart_id, group in CHART_GROUPS.items():
            if group in groups:
                self.charts[chart_id].mark_dirty()

    def urgent(self, chart_id: str) -> None:
        """A key changed this chart: the user is looking at it now, so it goes before the round-robin."""
        self._urgent.append(chart_id)

    def redraw_one(self) -> None:
        while self._urgent:
            chart = self.charts[self._urgent.pop(0)]
            if self._drawable(chart):
                chart.redraw()
                return
        charts = list(self.charts.values())
        for i in range(len(charts)):
            chart = charts[(self._next + i) % len(charts)]
            if self._drawable(chart):
                chart.redraw()
                self._next = (self._next + i + 1) % len(charts)
                return

    @staticmethod
    def _drawable(chart) -> bool:
        return chart.dirty and chart.display and chart.size.width > 0
