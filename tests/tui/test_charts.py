"""The chart widgets in a tiny app: placeholders, redraws from scripted events, log scale, modes, big runs."""

import io
import math

from rich.console import Console
from rich.text import Text
from textual.app import App, ComposeResult
from textual.containers import Grid

from torchtui.engine import protocol as p
from torchtui.engine.history import RunHistory
from torchtui.tui.charts.base import Chart, plot_text
from torchtui.tui.charts.grad import GradChart, shown_layers
from torchtui.tui.charts.loss import LossChart
from torchtui.tui.charts.lr import LRChart
from torchtui.tui.charts.metric import MetricChart
from torchtui.tui.charts.prediction import PredictionView

from .fakes import scripted_run

CHARTS = {"loss": LossChart, "metric": MetricChart, "grad": GradChart, "lr": LRChart, "prediction": PredictionView}


class ChartsApp(App):
    """Every chart over one shared RunHistory, laid out as the real app does."""

    CSS = "Grid { grid-size: 2 3; grid-rows: 1fr 1fr 1fr; } #prediction { column-span: 2; }"

    def __init__(self, history: RunHistory):
        super().__init__()
        self.history = history

    def compose(self) -> ComposeResult:
        with Grid():
            for chart_id, cls in CHARTS.items():
                yield cls(self.history, id=chart_id)

    def chart(self, chart_id: str) -> Chart:
        return self.query_one(f"#{chart_id}", Chart)


def feed(history: RunHistory, events) -> set[str]:
    changed = set()
    for event in events:
        changed |= history.apply(event)
    return changed


def shown(chart: Chart) -> str:
    return chart.render().plain


async def test_placeholders_before_any_data():
    app = ChartsApp(RunHistory())
    async with app.run_test(size=(160, 48)) as pilot:
        await pilot.pause()
        for chart_id in CHARTS:
            app.chart(chart_id).redraw()
            assert app.chart(chart_id).points_plotted == 0
        assert "waiting for the first training steps" in shown(app.chart("loss"))
        assert "predictions appear after the first evaluation" in shown(app.chart("prediction"))


async def test_scripted_run_draws_every_chart():
    app = ChartsApp(RunHistory())
    async with app.run_test(size=(160, 48)) as pilot:
        changed = feed(app.history, scripted_run())
        assert changed >= set(CHARTS)
        for chart_id in changed & set(CHARTS):
            app.chart(chart_id).mark_dirty()
        for chart_id in CHARTS:
            chart = app.chart(chart_id)
            assert chart.dirty
            chart.redraw()
            assert not chart.dirty and chart.points_plotted > 0, chart_id
        await pilot.pause()
        assert "loss  train" in shown(app.chart("loss")) and "val 0.125" in shown(app.chart("loss"))
        assert "lr x2" in shown(app.chart("loss")) and "lr x2" in shown(app.chart("lr"))
        assert "val acc 0.96" in shown(app.chart("metric")) and "val f1 0.95" in shown(app.chart("metric"))
        assert "dead relu act1 10% act2 5%" in shown(app.chart("grad"))
        assert "predictions  step 200" in shown(app.chart("prediction"))
        loss = app.chart("loss")
        lines = shown(loss).split("\n")
        assert len(lines) >= loss.size.height and max(len(line) for line in lines) == loss.size.width


async def test_render_reuses_the_picture_until_size_changes():
    history = RunHistory()
    app = ChartsApp(history)
    async with app.run_test(size=(160, 48)) as pilot:
        feed(history, scripted_run())
        loss = app.chart("loss")
        loss.redraw()
        assert loss.render() is loss.render()  # a repaint does not rebuild
        before = loss.size.width
        await pilot.resize_terminal(120, 40)
        await pilot.pause()
        assert loss.size.width != before
        assert max(len(line) for line in shown(loss).split("\n")) == loss.size.width


async def test_log_scale_toggle():
    history = RunHistory()
    app = ChartsApp(history)
    async with app.run_test(size=(160, 48)):
        feed(history, scripted_run())
        loss = app.chart("loss")
        loss.redraw()
        linear = shown(loss)
        loss.log_scale = True
        assert loss.dirty
        loss.redraw()
        assert "(log)" in shown(loss) and shown(loss) != linear
        loss.log_scale = False
        loss.redraw()
        assert "(log)" not in shown(loss)


async def test_grad_chart_cycles_to_ratios_on_a_log_axis():
    history = RunHistory()
    app = ChartsApp(history)
    async with app.run_test(size=(160, 48)):
        feed(history, scripted_run())
        grad = app.chart("grad")
        grad.redraw()
        assert "grad norm" in shown(grad) and "fc1" in shown(grad)
        assert grad.cycle_mode() == "ratio" and grad.dirty
        grad.redraw()
        assert "update/weight" in shown(grad) and "(log)" in shown(grad) and grad.points_plotted > 0
        assert grad.cycle_mode() == "grad"


async def test_regression_metrics_and_curve_predictions():
    history = RunHistory()
    app = ChartsApp(history)
    async with app.run_test(size=(160, 48)):
        run = "reg"
        start = scripted_run(run)[0]
        feed(history, [
            p.RunStarted(**{**start.__dict__, "task": "regression", "class_names": []}),
            p.StepStats(run, step=[1, 2], epoch=0.2, loss=[1.0, 0.5], lr=[0.01, 0.01], acc_steps=[], acc=[],
                        layer_steps=[], grad_norm=[], layer_grad_norm=[], update_ratio=[], samples_per_s=10.0,
                        eta_s=None, progress=0.5),
            p.EvalResult(run, "val", 2, 1, {"loss": 0.4, "mae": 0.3, "mse": 0.4, "r2": 0.6}),
            p.Predictions(run, 2, 1, "curve", -1.0, 1.0, curve_x=[i / 10 - 1 for i in range(21)],
                          curve_y=[math.sin(i / 10) for i in range(21)], train_x=[0.0, 0.5], train_y=[0.1, 0.4],
                          val_x=[0.25], val_y=[0.2]),
        ])
        metric, pred = app.chart("metric"), app.chart("prediction")
        metric.redraw()
        pred.redraw()
        assert "val mae 0.3" in shown(metric) and "val r2 0.6" in shown(metric)
        assert pred.points_plotted == 21 + 2 + 1 and "predictions  step 2" in shown(pred)


async def test_a_million_point_run_is_downsampled_to_the_width():
    history = RunHistory()
    app = ChartsApp(history)
    async with app.run_test(size=(160, 48)):
        feed(history, scripted_run()[:1])
        n = 1_000_000
        steps = range(1, n + 1)
        history.train_loss.extend(steps, (1 / math.sqrt(s) + 0.1 * ((s * 7919) % 13) / 13 for s in steps))
        history.train_loss_smooth.extend(steps, (1 / math.sqrt(s) for s in steps))
        loss = app.chart("loss")
        loss.mark_dirty()
        loss.redraw()
        assert len(history.train_loss) == n
        assert 0 < loss.points_plotted <= 2 * 2 * loss.size.width  # two series of <= 2 points a column
        assert "loss  train" in shown(loss)


async def test_the_theme_follows_the_app():
    history = RunHistory()
    app = ChartsApp(history)
    async with app.run_test(size=(160, 48)) as pilot:
        feed(history, scripted_run())
        loss = app.chart("loss")
        loss.redraw()
        app.theme = "textual-light"
        await pilot.pause()
        assert "loss  train" in shown(loss)
        assert loss._key[2] == "textual-auto-textual-light"


def test_charts_build_without_an_app():
    history = RunHistory()
    feed(history, scripted_run())
    for cls in CHARTS.values():
        chart = cls(history)
        text = chart.build_text(100, 30)
        assert chart.points_plotted > 0 and len(text.plain.split("\n")[0]) == 100


def ansi(text: Text) -> str:
    console = Console(file=io.StringIO(), width=300, force_terminal=True, color_system="truecolor")
    console.print(text, end="")
    return console.file.getvalue()


def test_reading_the_matrix_renders_exactly_what_plotext_prints():
    history = RunHistory()
    feed(history, scripted_run())
    for cls in (LossChart, PredictionView):
        for theme in ("textual-default", "pro"):
            chart = cls(history)
            chart.build_text(90, 25, theme)  # draws into chart.plt (the title line is ours, above it)
            fast = plot_text(chart.plt)
            slow = Text.from_ansi(chart.plt.build())  # textual-plotext's own path, same plot
            slow.right_crop(1)  # plotext ends its last row with a newline
            assert fast.plain == slow.plain and ansi(fast) == ansi(slow), (cls.__name__, theme)


async def test_no_color_tells_classes_apart_by_character():
    history = RunHistory()
    app = ChartsApp(history)
    async with app.run_test(size=(160, 48)):
        feed(history, scripted_run())
        app.no_color = True
        pred = app.chart("prediction")
        pred.redraw()
        assert "░" in shown(pred) and "·" in shown(pred) and "●" not in shown(pred)


def test_many_layers_show_first_and_last():
    names = [f"l{i}" for i in range(20)]
    picked = shown_layers(names, 8)
    assert len(picked) == 8 and picked[0] == "l0" and picked[-1] == "l19"
    assert shown_layers(names[:3], 8) == names[:3]
