"""The gradient-health chart: global grad norm, per-layer grad norms or update/weight ratios, dead ReLUs."""

from __future__ import annotations

from torchtui.engine.history.series import last_y
from torchtui.tui.charts.base import GREY, PALETTE, Chart, fmt

MODES = ("grad", "ratio")
MAX_LAYERS = len(PALETTE)  # more lines than colours cannot be told apart anyway
RATIO_GUIDE = 1e-3  # the usual rule of thumb for a healthy ‖Δw‖/‖w‖ per step


class GradChart(Chart):
    """Mode "grad": the global grad norm per step (faint) and each layer's norm. Mode "ratio": each
    layer's ‖Δw‖/‖w‖ on a log axis (ratios span decades), with a guide at 1e-3. `cycle_mode()` switches.

    The title names the layers whose ReLUs were dead (never positive) at the last evaluation.
    """

    chart_title = "grad health"
    group = "grad"
    log_scalable = True
    legend_row = True

    def __init__(self, history, **kwargs):
        super().__init__(history, **kwargs)
        self._mode = MODES[0]

    @property
    def mode(self) -> str:
        return self._mode

    @mode.setter
    def mode(self, value: str) -> None:
        if value not in MODES:
            raise ValueError(f"GradChart.mode must be one of {MODES}, not {value!r}")
        if value != self._mode:
            self._mode = value
            self.mark_dirty()

    def cycle_mode(self) -> str:
        """Switch to the next view; returns its name."""
        self.mode = MODES[(MODES.index(self._mode) + 1) % len(MODES)]
        return self._mode

    def y_log(self) -> bool:
        return self.log_scale or self._mode == "ratio"

    def placeholder(self) -> str | None:
        if self._mode == "ratio" and not any(len(s) for s in self.history.update_ratio.values()):
            return "update/weight ratios appear after the first sampled step (g: grad norms)"
        return super().placeholder()

    def draw(self) -> str:
        h = self.history
        if self._mode == "grad":
            self.dots(*self.sample(h.grad_norm), color=GREY)
            self._layers(h.layer_grad)
            title = f"grad norm {fmt(last_y(h.grad_norm))}"
        else:
            self._layers(h.update_ratio)
            self.plt.hline(RATIO_GUIDE, GREY)
            self.include_y(RATIO_GUIDE)
            title = "update/weight per layer"
        return title + dead_relu_text(h.dead_relu) + ("  (log)" if self.y_log() else "")

    def _layers(self, per_layer: dict) -> None:
        # Midlines: several overlapping min/max zigzags are unreadable; spikes still show in the global dots.
        names = shown_layers(list(per_layer))
        for i, name in enumerate(names):
            self.line(*self.smooth(per_layer[name]), color=PALETTE[i % len(PALETTE)], label=name)


def shown_layers(names: list[str], limit: int = MAX_LAYERS) -> list[str]:
    """All layers if few, else `limit` of them spread from the first to the last (input and head matter)."""
    if len(names) <= limit:
        return names
    picks = sorted({round(i * (len(names) - 1) / (limit - 1)) for i in range(limit)})
    return [names[i] for i in picks]


def dead_relu_text(dead: dict[str, float]) -> str:
    """"  dead relu act1 12% act2 3%", or nothing before the first evaluation."""
    if not dead:
        return ""
    return "  dead relu " + " ".join(f"{name} {fraction * 100:.0f}%" for name, fraction in dead.items())
