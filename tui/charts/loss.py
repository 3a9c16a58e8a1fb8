"""The loss chart: train loss per step (raw and smoothed), val loss per evaluation, live-change markers."""

from __future__ import annotations

from torchtui.engine.history.series import last_y
from torchtui.tui.charts.base import BLUE, GREY, ORANGE, Chart, fmt


class LossChart(Chart):
    """Raw minibatch loss as faint dots, its EMA as a line, val loss as a second line; `l` toggles log y."""

    chart_title = "loss"
    group = "loss"
    log_scalable = True
    legend_row = True

    def draw(self) -> str:
        h = self.history
        raw = self.sample(h.train_loss)
        smooth = self.smooth(h.train_loss_smooth)
        val_series = h.val.get("loss")
        val = self.sample(val_series) if val_series is not None else ([], [])
        self.dots(*raw, color=GREY)
        self.line(*smooth, color=BLUE, label="train")
        self.evals(*val, color=ORANGE, label="val")
        self.vertical_markers(h.markers)
        title = f"loss  train {fmt(last_y(h.train_loss_smooth))}"
        if val_series is not None:
            title += f"  val {fmt(last_y(val_series))}"
        return title + ("  (log)" if self.log_scale else "")

