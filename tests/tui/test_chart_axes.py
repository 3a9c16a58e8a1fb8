"""Chart axes a new user can read: round short y labels, no empty decades, bounded metrics in [0, 1], the
legend and the live-change labels off the data and off each other (issue 14, item 6)."""

import math
import re

from torchtui.engine import protocol as p
from torchtui.engine.history import RunHistory
from torchtui.tui.charts.grad import GradChart
from torchtui.tui.charts.loss import LossChart
from torchtui.tui.charts.lr import LRChart
from torchtui.tui.charts.metric import MetricChart

from .fakes import scripted_run

RUN = "20261122-120000-moons"


def history_with(loss, *, layers=("fc1", "fc2", "head"), lr=None, grads=None) -> RunHistory:
    start = scripted_run()[0]
    h = RunHistory()
    h.apply(p.RunStarted(**{**start.__dict__, "layers": list(layers)}))
    steps = list(range(1, len(loss) + 1))
    sampled = steps[::10]
    h.apply(p.StepStats(RUN, step=steps, epoch=1.0, loss=list(loss), lr=lr or [0.01] * len(steps), acc_steps=[], acc=[],
                        layer_steps=sampled, grad_norm=[1.0] * len(sampled),
                        layer_grad_norm=grads or [[0.5] * len(layers)] * len(sampled), update_ratio=[],
                        samples_per_s=1.0, eta_s=None, progress=0.5))
    return h


def y_labels(text: str) -> list[str]:
    """The y tick labels of a built chart: what stands left of the ┤ ticks."""
    return [m.group(1) for line in text.split("\n") if (m := re.match(r"^\s*(\S+)┤", line))]


def value(label: str) -> float:
    scale = {"k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12}
    return float(label[:-1]) * scale[label[-1]] if label[-1] in scale else float(label)


def plot_rows(text: str) -> list[str]:
    """The rows inside the plot frame (between ┌ and └)."""
    lines = text.split("\n")
    top = next(i for i, line in enumerate(lines) if "┌" in line)
    bottom = next(i for i, line in enumerate(lines) if "└" in line)
    return lines[top + 1:bottom]


def test_short_numbers_and_tick_labels():
    from torchtui.tui.charts.axes import short_number, tick_labels, y_ticks

    assert [short_number(v) for v in (0, 0.25, 12.5, 1234, 1.5e6, 3e-7, 1e20)] == \
        ["0", "0.25", "12.5", "1.23k", "1.5M", "3e-7", "1e20"]
    assert tick_labels([0.0, 0.25, 0.5, 0.75, 1.0]) == ["0", "0.25", "0.5", "0.75", "1"]
    assert tick_labels([0.0, 5e-4, 1e-3, 1.5e-3]) == ["0", "5e-4", "1e-3", "1.5e-3"]  # one style per axis
    assert y_ticks(5e-4, 0.74, 10, log=True) == [1e-3, 1e-2, 1e-1]  # nothing above the data: no empty decades


def test_a_log_loss_axis_ends_near_the_data_with_short_labels():
    loss = [0.74 * math.exp(-s / 60) + 5e-4 for s in range(1, 601)]
    chart = LossChart(history_with(loss))
    chart.log_scale = True
    labels = y_labels(chart.build_text(60, 16).plain)
    assert labels and max(value(label) for label in labels) <= 0.74  # was 781 over a 0.74 maximum
    assert all(len(label) <= 5 for label in labels), labels  # was 6-7 decimals


def test_a_diverged_run_keeps_short_labels_and_a_wide_plot():
    loss = [0.7] * 300 + [0.7 * 10 ** (s / 15) for s in range(1, 301)] + [math.inf, math.nan]
    text = LossChart(history_with(loss)).build_text(60, 16).plain
    labels = y_labels(text)
    assert labels and all(len(label) <= 5 for label in labels), labels  # was 21 digits
    assert all(math.isfinite(value(label)) for label in labels)
    assert min(len(row.split("│")[-2]) for row in plot_rows(text) if row.count("│") >= 2) >= 50


def test_accuracy_axes_stay_within_zero_and_one():
    h = RunHistory()
    for event in scripted_run():
        h.apply(event)
    labels = y_labels(MetricChart(h).build_text(60, 16).plain)
    assert labels and max(value(label) for label in labels) <= 1.0 and min(value(label) for label in labels) >= 0.0


def test_a_six_layer_legend_stays_off_the_plot():
    layers = ("conv1", "conv1_norm", "conv2", "conv2_norm", "fc1", "head")
    grads = [[0.1 * (i + 1) * (1 + s / 100) for i in range(6)] for s in range(60)]
    text = GradChart(history_with([1.0] * 600, layers=layers, grads=grads)).build_text(60, 14).plain
    inside = "\n".join(plot_rows(text))
    assert not any(name in inside for name in layers)  # plotext drew all six over the data
    header = text.split("\n")[:3]
    assert sum(name in line for line in header for name in ("conv1 ", "fc1", "head")) >= 2


def test_live_change_labels_do_not_overlap_each_other_or_the_legend():
    h = history_with([0.7 * 0.99 ** s for s in range(1, 601)])
    for step in (300, 305, 310, 500):
        h.apply(p.HparamsChanged(RUN, step, {"lr": [0.01, 0.02]}))
    for chart in (LossChart(h), LRChart(h)):
        rows = plot_rows(chart.build_text(60, 16).plain)
        labelled = [row for row in rows if "lr x2" in row]
        assert len(labelled) == 1 and "x2lr" not in labelled[0] and "x2 lr" not in labelled[0]
        assert labelled[0].count("lr x2") == 2  # 310 and 500; 300 and 305 would have overwritten 310's
        assert "train" not in "\n".join(rows)  # the legend is above the plot, not under the labels


def test_round_ticks_read_30k_and_10_not_3e01k():
    """Issue 26 item 9: the runs overlay's axis read 3e+01k, the grad chart's 1e+01 (one significant digit
    was asked of a number that has two before its point)."""
    from torchtui.tui.charts.axes import short_number, tick_labels

    assert tick_labels([0.0, 10_000.0, 20_000.0, 30_000.0]) == ["0", "10k", "20k", "30k"]
    assert tick_labels([0.1, 1.0, 10.0]) == ["0.1", "1", "10"]
    assert tick_labels([100.0, 200.0, 300.0]) == ["100", "200", "300"]
    assert short_number(10, 1) == "10" and short_number(260_000, 1) == "300k"
    grads = [[10 ** (s / 20 - 1) for _ in range(3)] for s in range(60)]  # 0.1 .. 100, a log y axis
    chart = GradChart(history_with([1.0] * 600, grads=grads))
    labels = y_labels(chart.build_text(60, 16).plain)
    assert labels and not any("e+" in label for label in labels), labels
