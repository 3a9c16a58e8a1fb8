"""The runs overlay charts: one line per selected run, in its own colour, with a legend (the Runs screen)."""

from __future__ import annotations

from torchtui.engine.history import RunHistory
from torchtui.tui.charts.base import PALETTE, Chart

MARKERS = ("braille", "dot", "x", "+")  # past the palette's 8 colours, runs differ by marker too


def colour_of(index: int):
    return PALETTE[index % len(PALETTE)]


class CompareChart(Chart):
    """`what` is "loss" (smoothed train loss per step) or a val metric (per evaluation); `runs` is a list of
    state.compare.OverlayRun in selection order. Live changes recorded in a run are vertical lines in its
    colour."""

    chart_title = "compare"
    log_scalable = True
    waiting = "select runs (space) to overlay their curves"

    def __init__(self, what: str = "loss", *, id: str | None = None, classes: str | None = None):
        super().__init__(RunHistory(), id=id, classes=classes)
        self.what = what
        self.runs: list = []
        self.axis = "step"

    def show(self, runs: list, axis: str, what: str | None = None) -> None:
        self.runs, self.axis = runs, axis
        self.step_axis = axis == "step"  # whole-number ticks for steps; epochs are fractional
        self.what = what or self.what
        self.mark_dirty()
        self.redraw()

    def placeholder(self) -> str | None:
        if not self.runs:
            return self.waiting
        if not any(len(self._series(run)) for run in self.runs if self._series(run) is not None):
            return f"no {self.what_label()} recorded in the selected runs yet"
        return None

    def what_label(self) -> str:
        return "train loss" if self.what == "loss" else f"val {self.what}"

    def _series(self, run):
        return run.loss if self.what == "loss" else run.evals.get(self.what)

    def draw(self) -> str:
        for i, run in enumerate(self.runs):
            series = self._series(run)
            if series is None or not len(series):
                continue
            colour = colour_of(i)
            marker = MARKERS[(i // len(PALETTE)) % len(MARKERS)]
            xs, ys = self.smooth(series) if self.what == "loss" else self.sample(series)
            self.line(xs, ys, color=colour, label=run.label, marker=marker)
            for x, _ in run.changes:
                self.plt.vline(x, colour)
        changes = sum(len(run.changes) for run in self.runs)
        return (f"{self.what_label()} per {self.axis} · {len(self.runs)} run{'s' * (len(self.runs) != 1)}"
                + (f" · {changes} live change{'s' * (changes != 1)} │" if changes else "")
                + ("  (log)" if self.log_scale else ""))
