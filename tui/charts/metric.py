"""The metric chart: train and val accuracy and F1 for classification, val MAE and R² for regression."""

from __future__ import annotations

from torchtui.tui.charts.base import BLUE, GREEN, ORANGE, PURPLE, Chart, fmt, last_y


class MetricChart(Chart):
    """Classification: smoothed train accuracy, val accuracy and val F1. Regression: val MAE and R².

    The title carries the latest values (and the test metrics once the run has them).
    """

    chart_title = "metrics"
    chart_id, group = "metric-chart", "metric"

    def placeholder(self) -> str | None:
        h = self.history
        if len(h.train_acc) or any(len(h.val.get(k, ())) for k in self._val_names()):
            return None
        return "val metrics appear after the first evaluation"

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
            if series is not None:
                self.evals(*self.sample(series), color=color, label=short, marker=marker)
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
