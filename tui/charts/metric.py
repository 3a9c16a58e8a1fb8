"""The metric chart: train and val accuracy and F1 for classification, val MAE and R² for regression."""

from __future__ import annotations

from rich.text import Text

from torchtui.engine import protocol as p
from torchtui.engine.history.series import last_y
from torchtui.tui.charts.base import BLUE, FALLBACK_THEME, GREEN, ORANGE, PURPLE, Chart, _centred, fmt


class MetricChart(Chart):
    """Classification: smoothed train accuracy, val accuracy and val F1. Regression: val MAE and R².

    The title carries the latest values (and the test metrics once the run has them).
    """

    chart_title = "metrics"
    group = "metric"
    legend_row = True

    def placeholder(self) -> str | None:
        if self._plottable():
            return None
        h = self.history
        if h.started is not None and not h.started.splits.get("val"):
            if h.state in p.END_STATES:
                return "no val split, and no test metrics: the test split is evaluated when a run finishes"
            return "no val split: the test metrics appear here when the run finishes"
        return "val metrics appear after the first evaluation"

    def _plottable(self) -> bool:
        h = self.history
        return bool(len(h.train_acc) or any(len(h.val.get(k, ())) for k in self._val_names()))

    def build_text(self, width: int, height: int, theme: str = FALLBACK_THEME) -> Text:
        """Nothing to plot but the test metrics (no val split, as in `line`): they, as a table."""
        test = self.history.test
        if self._plottable() or not test:
            return super().build_text(width, height, theme)
        self.buckets, self.area, self.points_plotted = max(10, width), (width, height), 0
        rows = [f"{name:>10} {fmt(value):<10}" for name, value in test.items()]
        return _centred("\n".join(["metrics  test split, evaluated at the end", ""] + rows), width, height, style="")

    def y_range(self, lo: float, hi: float) -> tuple[float, float]:
        """Accuracy and F1 (all this chart plots for classification) live in [0, 1]: so does the axis."""
        if self._regression():
            return lo, hi
        return max(0.0, lo), min(1.0, hi) if hi > max(0.0, lo) else max(0.0, lo) + 1e-3

    def y_bounds(self) -> tuple[float, float] | None:
        return None if self._regression() else (0.0, 1.0)

    def _regression(self) -> bool:
        return self.history.task == "regression"

    def _val_names(self) -> tuple[str, ...]:
        return ("mae", "r2") if self._regression() else ("accuracy", "f1")

    def draw(self) -> str:
        return self._draw_regression() if self._regression() else self._draw_classification()

    def _draw_classification(self) -> str:
        h = self.history
        self.line(*self.smooth(h.train_acc_smooth), color=BLUE, label="train acc")
        parts = [f"acc {fmt(last_y(h.train_acc_smooth))}"] if len(h.train_acc) else []
        for name, short, color, marker in (("accuracy", "val acc", ORANGE, "•"), ("f1", "val f1", PURPLE, "x")):
            series = h.val.get(name)
            if series is not None:  # f1 is the macro average over classes, also for two (not the positive class's)
                label = "val macro f1" if name == "f1" else short
                self.evals(*self.sample(series), color=color, label=label, marker=marker)
                parts.append(f"{short} {fmt(last_y(series))}")
        return self._title(parts, ("accuracy", "f1"))

    def _draw_regression(self) -> str:
        h = self.history
        parts = []
        for name, color, marker in (("mae", ORANGE, "•"), ("r2", GREEN, "x")):
            series = h.val.get(name)
            if series is not None:
                self.evals(*self.sample(series), color=color, label=f"val {name}", marker=marker)
                parts.append(f"val {name} {fmt(last_y(series))}")
        return self._title(parts, ("mae", "r2"))

    def _title(self, parts: list[str], test_names: tuple[str, ...]) -> str:
        test = self.history.test
        tested = [f"{name} {fmt(test[name])}" for name in test_names if name in test]
        if tested:
            parts.append("test " + " ".join(tested))
        return "  ".join(["metrics"] + parts)
