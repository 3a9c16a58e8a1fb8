"""Which chart to redraw on a tick: those a key just changed first, then the dirty ones in turn.

A plotext build costs 10-50 ms of pure Python; redrawing at most one chart a tick keeps key handling
responsive while five charts update.
"""

from __future__ import annotations

import time

# After a key press the charts wait this long: a 20-50 ms chart build in the next tick would otherwise
# delay drawing what the key did (bench/bench_tui.py's key latency).
KEY_HOLD_S = 0.2
# Round-robin builds take at most this share of the UI thread: after a build of d seconds the next waits
# d * (1 / CHART_SHARE - 1). Idle machine, 20 ms builds: every tick as before. Loaded, 80 ms builds: every
# third tick, so keys find the thread free (bench/bench_tui.py's key latency under load, issue 26 item 10).
CHART_SHARE = 0.3

class ChartScheduler:
    """Marks charts dirty from the groups an event changed and redraws one per call."""

    def __init__(self, charts: dict):
        self.charts = charts
        self._next = 0
        self._urgent: list[str] = []
        self._hold_until = 0.0
        self._rest_until = 0.0  # the last round-robin build's rest (CHART_SHARE)

    def hold(self, seconds: float = KEY_HOLD_S) -> None:
        """A key was pressed: leave the round-robin alone for a moment so its effect is drawn first."""
        self._hold_until = time.monotonic() + seconds

    def changed(self, groups: set[str]) -> None:
        for chart in self.charts.values():
            if chart.group in groups:
                chart.mark_dirty()

    def urgent(self, chart_id: str) -> None:
        """A key changed this chart: the user is looking at it now, so it goes before the round-robin."""
        self._urgent.append(chart_id)

    def redraw_one(self) -> None:
        while self._urgent:
            chart = self.charts[self._urgent.pop(0)]
            if self._drawable(chart):
                chart.redraw()
                return
        if time.monotonic() < max(self._hold_until, self._rest_until):
            return
        charts = list(self.charts.values())
        for i in range(len(charts)):
            chart = charts[(self._next + i) % len(charts)]
            if self._drawable(chart):
                started = time.perf_counter()
                chart.redraw()
                took = time.perf_counter() - started
                self._rest_until = time.monotonic() + took * (1 / CHART_SHARE - 1)
                self._next = (self._next + i + 1) % len(charts)
                return

    def redraw_all(self) -> None:
        """Every chart that can be drawn, now (a run's whole history just arrived: worth one long tick)."""
        for chart in self.charts.values():
            if self._drawable(chart):
                chart.redraw()

    def all_drawn(self) -> bool:
        """No chart on show waits for a size to be drawn in (one just mounted, not laid out yet)."""
        return not any(chart.dirty and chart.display and chart.size.width == 0 for chart in self.charts.values())

    @staticmethod
    def _drawable(chart) -> bool:
        return chart.dirty and chart.display and chart.size.width > 0
