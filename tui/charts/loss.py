"""The loss chart: train loss per step (raw and smoothed), val loss per evaluation, live-change, rewind and rollback
markers, and the run's snapshots (what a rewind can go back to) as ticks along the bottom."""

from __future__ import annotations

from torchtui.engine.history.series import last_y
from torchtui.tui.charts.base import BLUE, GREEN, GREY, ORANGE, Chart, fmt

SNAPSHOT_MARK = "▴"  # a snapshot's step, on the x axis


class LossChart(Chart):
    """Raw minibatch loss as faint dots, its EMA as a line, val loss as a second line; `l` toggles log y."""

    chart_title = "loss"
    group = "loss"
    log_scalable = True
    legend_row = True
    # Set by the rewind controller: the steps of the run's snapshots (listed by `w`), the one under the cursor.
    snapshot_steps: list = []
    chosen_step: int | None = None

    def _snapshots(self) -> None:
        """A tick at each snapshot's step along the bottom of the data, where it does not stretch the axes."""
        if not self.snapshot_steps or not self._extent:
            return
        x0, x1, y0, _ = self._extent
        steps = [s for s in self.snapshot_steps if x0 <= s <= x1]
        if steps:
            self.plt.scatter(steps, [y0] * len(steps), marker=SNAPSHOT_MARK, color=GREEN)

    def draw(self) -> str:
        h = self.history
        raw = self.sample(h.train_loss)
        smooth = self.smooth(h.train_loss_smooth)
        val_series = h.val.get("loss")
        val = self.sample(val_series) if val_series is not None else ([], [])
        self.dots(*raw, color=GREY)
        self.line(*smooth, color=BLUE, label="train")
        self.evals(*val, color=ORANGE, label="val")
        self._snapshots()
        chosen = [(self.chosen_step, f"↶ {self.chosen_step:,}")] if self.chosen_step is not None else []
        self.vertical_markers(h.markers + chosen)
        if chosen:
            self.plt.vline(self.chosen_step, GREEN)
        title = f"loss  train {fmt(last_y(h.train_loss_smooth))}"
        if val_series is not None:
            title += f"  val {fmt(last_y(val_series))}"
        return title + ("  (log)" if self.log_scale else "")

