"""The charts the app shows, in layout order. A new chart is a module in this package and a line here."""

from __future__ import annotations

from torchtui.tui.charts.grad import GradChart
from torchtui.tui.charts.loss import LossChart
from torchtui.tui.charts.lr import LRChart
from torchtui.tui.charts.metric import MetricChart
from torchtui.tui.charts.prediction import PredictionView

CHARTS = (LossChart, MetricChart, GradChart, LRChart, PredictionView)
