"""The LR range test chart: smoothed loss against lr on a log axis, the suggested lr marked."""

from __future__ import annotations

import math

from torchtui.engine.history import RunHistory
from torchtui.tui.charts.base import BLUE, ORANGE, RED, Chart


def lr_text(lr: float | None) -> str:
    """An lr as people write one: 0.003, 1e-05."""
    return "–" if lr is None else f"{lr:.2g}"


class LrFindChart(Chart):
    """Shows one LrFound reply (`show`); until then the placeholder says the test is running."""

    chart_title = "lr range test"
    step_axis = False  # lr on a log axis: decade ticks of our own
    waiting = "running the LR range test on a copy of the model…"

    def __init__(self, *, id: str | None = None, classes: str | None = None):
        super().__init__(RunHistory(), id=id, classes=classes)
        self.found = None  # the LrFound shown

    def show(self, found) -> None:
        self.found = found
        self.mark_dirty()
        self.redraw()

    def placeholder(self) -> str | None:
        if self.found is None:
            return self.waiting
        if self.found.error:
            return f"the LR range test failed:\n{self.found.error}"
        if len(self.found.points) < 2:
            return "too few steps to draw (the loss was not finite from the start): try a lower start lr"
        return None

    def draw(self) -> str:
        found, plt = self.found, self.plt
        lrs = [lr for lr, _ in found.points]
        losses = [loss for _, loss in found.points]
        plt.xscale("log")
        self.line(lrs, losses, color=BLUE)
        low, high = math.floor(math.log10(lrs[0])), math.ceil(math.log10(lrs[-1]))
        step = max(1, math.ceil((high - low + 1) / max(2, self.area[0] // 8)))  # a label every ~8 columns at most
        ticks = [10.0 ** k for k in range(low, high + 1, step)]
        plt.xticks(ticks, [f"1e{k}" for k in range(low, high + 1, step)])
        lo, hi = min(losses), max(losses)
        rows = max(3, self.area[1] - 5)  # the title, the frame and the x ticks take the rest
        top = hi + ((hi - lo) or abs(hi) or 1.0) * 1.5 / rows  # a label row above the data, never over it
        marks = sorted([(lr, colour, label) for lr, colour, label in
                        ((found.suggested_lr, RED, "suggested"), (found.minimum_lr, ORANGE, "min÷10"))
                        if lr is not None and lrs[0] <= lr <= lrs[-1]])
        for i, (lr, colour, label) in enumerate(marks):
            plt.vline(lr, colour)
            # two marks side by side: the left one's label to the left of its line, the other's to the right
            left = i == 0 and len(marks) == 2
            plt.text(f"{label} " if left else f" {label}", lr, top, color=colour,
                     alignment="right" if left else "left")
        if found.suggested_lr is not None:
            at = min(range(len(lrs)), key=lambda i: abs(math.log(lrs[i] / found.suggested_lr)))
            self.dots([lrs[at]], [losses[at]], color=RED, marker="●")
        title = f"loss vs lr (log) · suggested {lr_text(found.suggested_lr)} · min÷10 {lr_text(found.minimum_lr)}"
        return title + (" · stopped early" if found.stopped else "")

