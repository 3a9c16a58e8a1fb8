"""The prediction panel shows what fits the data (issue 14, item 10): a confusion matrix for any
classification, held-out images with predicted and true classes, true against predicted values for
sequences; and the metrics chart shows the test metrics of a run without a val split."""

from torchtui.engine import protocol as p
from torchtui.engine.history import RunHistory
from torchtui.tui.charts.metric import MetricChart
from torchtui.tui.charts.prediction import PredictionView

from .fakes import scripted_run

RUN = "20261122-120000-moons"
WAITING = "appear after the first evaluation"


def started(task="multiclass", names=("0", "1", "2"), splits=None) -> RunHistory:
    h = RunHistory()
    start = scripted_run()[0]
    h.apply(p.RunStarted(**{**start.__dict__, "task": task, "class_names": list(names),
                            **({"splits": splits} if splits else {})}))
    h.apply(p.StateChanged(RUN, p.RUNNING))
    return h


def confusion(k: int) -> list[list[int]]:
    return [[30 + i if i == j else (2 if j == (i + 1) % k else 0) for j in range(k)] for i in range(k)]


def test_tabular_classification_shows_the_confusion_matrix_after_the_run():
    h = started(names=("setosa", "versicolor", "virginica"))
    h.apply(p.EvalResult(RUN, "val", 40, 2, {"accuracy": 0.9}, confusion(3)))
    h.apply(p.StateChanged(RUN, p.FINISHED))
    text = PredictionView(h).build_text(80, 12).plain
    assert WAITING not in text and "val confusion" in text and "predicted" in text
    assert "virginica" in text and "31" in text and "32" in text  # row names, the diagonal


def test_a_small_panel_lists_the_commonest_mistakes_instead():
    h = started(names=[str(k) for k in range(10)])
    h.apply(p.EvalResult(RUN, "test", 40, 2, {"accuracy": 0.9}, confusion(10)))
    text = PredictionView(h).build_text(40, 8).plain
    assert "test confusion" in text and "accuracy" in text and "0→1 ×2" in text


def test_image_classification_shows_held_out_images_with_predicted_and_true_classes():
    h = started(names=[str(k) for k in range(10)])
    h.apply(p.EvalResult(RUN, "val", 40, 2, {"accuracy": 0.9}, confusion(10)))
    image = [[[(r + c) / 14 for c in range(8)] for r in range(8)]]
    h.apply(p.Predictions(RUN, 40, 2, "images", images=[image] * 4, predicted=[3, 1, 4, 1], val_y=[3, 1, 5, 1]))
    text = PredictionView(h).build_text(150, 16).plain
    assert "val images" in text and "4≠5" in text and "▀" in text
    assert "32" in text  # the matrix beside them


def test_sequence_regression_plots_true_against_predicted():
    h = started(task="regression", names=())
    n = 50
    h.apply(p.Predictions(RUN, 40, 2, "series", 0, n - 1, val_x=list(range(n)), val_y=[i / n for i in range(n)],
                          curve_y=[i / n + 0.01 for i in range(n)]))
    chart = PredictionView(h)
    text = chart.build_text(80, 14).plain
    assert chart.points_plotted == 2 * n and "val samples" in text and "true" in text and "predicted" in text


def test_a_finished_run_without_predictions_says_so():
    h = started(task="regression", names=())
    h.apply(p.StateChanged(RUN, p.FINISHED))
    text = PredictionView(h).build_text(80, 12).plain
    assert WAITING not in text and "no predictions to show" in text


def test_without_a_val_split_the_metrics_chart_shows_the_test_metrics():
    h = started(task="regression", names=(), splits={"train": 40, "val": 0, "test": 10})
    assert "no val split" in MetricChart(h).build_text(60, 12).plain
    h.apply(p.RunFinished(RUN, p.FINISHED, {"test": {"loss": 0.01, "mae": 0.012, "r2": 0.998}}))
    text = MetricChart(h).build_text(60, 12).plain
    assert "test split" in text and "0.012" in text and "0.998" in text and "appear" not in text
