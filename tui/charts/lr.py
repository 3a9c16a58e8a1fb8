"""The learning-rate chart: lr per step, with a marker at each live change."""

from __future__ import annotations

from torchtui.tui.charts.base import GREEN, Chart, fmt


class LRChart(Chart):
    """The schedule as it ran, including live changes (`+`/`-`), which also get a labelled marker."""

    chart_title = "lr"
    group = "lr"
    log_scalable = True

    def draw(self) -> str:
        h = self.history
        points = self.sample(h.lr)
        self.line(*points, color=GREEN, label=None)
        self.vertical_markers(h.markers)
        return f"lr {fmt(h.lr_now)}" + ("  (log)" if self.log_scale else "")
