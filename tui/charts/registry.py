"""The charts the app shows, in layout order. A new chart is a module in this package and a line here.

The app composes the grid from this table without importing the charts: their modules (and plotext under
them, ~35 ms) load after the first paint (tui/charts/grid.py).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass


@dataclass(frozen=True)
class ChartSlot:
    """Where a chart goes: its module and class, the widget id (app.tcss styles it), and the view that shows
    it below 120 columns ("charts", or "more" beside the log)."""
    module: str
    cls: str
    chart_id: str
    narrow_view: str = "charts"

    def load(self) -> type:
        return getattr(importlib.import_module(f"torchtui.tui.charts.{self.module}"), self.cls)


CHARTS = (
    ChartSlot("loss", "LossChart", "loss-chart"),
    ChartSlot("metric", "MetricChart", "metric-chart"),
    ChartSlot("grad", "GradChart", "grad-chart"),
    ChartSlot("lr", "LRChart", "lr-chart", narrow_view="more"),
    ChartSlot("prediction", "PredictionView", "prediction"),
)
