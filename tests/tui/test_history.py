"""RunHistory folds hand-built engine events into series and reports which chart groups changed."""

import math

from torchtui.engine import protocol as p
from torchtui.engine.history import GROUPS, RunHistory, change_label

from .fakes import scripted_run

RUN = "20261122-120000-moons"


def started(run_id: str = RUN, task: str = "binary", layers=("fc1", "head")) -> p.RunStarted:
    return p.RunStarted(run_id=run_id, run_dir=f"runs/{run_id}", name="moons", task=task, loss="bce_with_logits",
                        device="cpu", params=10, trainable=10, splits={"train": 8}, steps_per_epoch=4,
                        total_steps=8, epochs=2, start_step=0, start_epoch=0, config={}, class_names=["a", "b"],
                        layers=list(layers))


def stats(steps, run_id: str = RUN, acc=True) -> p.StepStats:
    return p.StepStats(run_id=run_id, step=list(steps), epoch=steps[-1] / 4, loss=[1.0 / s for s in steps],
                       lr=[0.01] * len(steps), acc_steps=list(steps) if acc else [],
                       acc=[0.5 + s / 100 for s in steps] if acc else [],
                       layer_steps=[steps[-1]], grad_norm=[2.0], layer_grad_norm=[[0.3, 0.1]],
                       update_ratio=[[1e-3, 2e-3]], samples_per_s=100.0, eta_s=1.0, progress=steps[-1] / 8)


def test_a_run_fills_the_series_and_reports_groups():
    h = RunHistory()
    assert h.apply(started()) == set(GROUPS)
    assert h.task == "binary" and h.started.run_id == RUN
    assert h.apply(p.StateChanged(RUN, p.RUNNING)) == {"status"} and h.state == p.RUNNING
    assert h.apply(stats([1, 2, 3, 4])) == {"loss", "lr", "grad", "metric", "status"}
    assert len(h.train_loss) == 4 and h.train_loss.last == (4.0, 0.25)
    assert h.lr.last == (4.0, 0.01) and h.grad_norm.last == (4.0, 2.0) and h.train_acc.last == (4.0, 0.54)
    assert len(h.train_loss_smooth) == 4 and 0.25 < h.train_loss_smooth.last[1] < 1.0
    assert h.layer_grad["fc1"].last == (4.0, 0.3) and h.update_ratio["head"].last == (4.0, 2e-3)
    assert h.last_stats.step == [1, 2, 3, 4]

    val = p.EvalResult(RUN, "val", 4, 1, {"loss": 0.4, "accuracy": 0.8, "f1": 0.7}, [[1, 0], [0, 1]],
                       {"act1": 0.25})
    assert h.apply(val) == {"metric", "loss", "grad", "prediction"}  # the confusion matrix is shown there
    assert h.val["accuracy"].last == (4.0, 0.8) and h.val["loss"].last == (4.0, 0.4)
    assert h.dead_relu == {"act1": 0.25}

    pred = p.Predictions(RUN, 4, 1, "grid", grid=[[0, 1]], train_x=[[0.0, 0.0]], train_y=[0])
    assert h.apply(pred) == {"prediction"} and h.predictions is pred
    assert h.apply(p.HparamsChanged(RUN, 5, {"lr": [0.01, 0.02]})) == {"loss", "lr"}
    assert h.markers == [(5, "lr x2")]

    assert h.apply(p.EvalResult(RUN, "test", 8, 2, {"accuracy": 0.9})) == {"metric", "status"}
    assert h.test == {"accuracy": 0.9}
    assert h.apply(p.RunFinished(RUN, p.FINISHED, {"reason": "done", "test": {"accuracy": 0.9}})) == {"status"}
    assert h.state == p.FINISHED and h.reason == "done"


def test_regression_stats_without_accuracy_leave_the_metric_chart_alone():
    h = RunHistory()
    h.apply(started(task="regression"))
    assert "metric" not in h.apply(stats([1, 2], acc=False))
    assert len(h.train_acc) == 0


def test_a_new_run_clears_and_a_resume_starts_over_for_its_replay():
    """A resume's RunStarted clears the series too: a run server replays metrics.jsonl after it (truncated at
    the resumed step), so the curves continue exactly as the run has them. Kept, the old curve met the replay's
    steps from 1 again: a resume near step 4 after step 24,288 made the accuracy EMA's gap -24,284 and the
    app crashed with OverflowError."""
    h = RunHistory()
    h.apply(started())
    h.apply(stats(range(1, 24289)))
    h.apply(p.HparamsChanged(RUN, 2, {"lr": [0.01, 0.005]}))
    assert h.apply(started()) == set(GROUPS)  # same id: a resume
    assert len(h.train_loss) == 0 and not h.markers
    h.apply(stats(range(4, 40)))  # the replay, then the resumed steps
    assert len(h.train_loss) == 36 and len(h.train_acc_smooth) == 36

    assert h.apply(started("other-run")) == set(GROUPS)
    assert len(h.train_loss) == 0 and not h.markers and not h.val and h.predictions is None
    assert h.started.run_id == "other-run"


def test_steps_that_go_back_do_not_break_the_average():
    """Without the RunStarted in between (a client that missed it), steps going back are weighed as one step."""
    h = RunHistory()
    h.apply(started())
    h.apply(stats(range(1, 24289)))
    h.apply(stats(range(4, 40)))
    assert all(math.isfinite(v) for v in h.train_acc_smooth.downsample(100)[1])


def test_events_of_other_runs_are_ignored():
    h = RunHistory()
    assert h.apply(stats([1])) == set()  # nothing started yet
    h.apply(started())
    h.apply(p.StateChanged(RUN, p.RUNNING))
    assert h.apply(stats([1, 2], run_id="stale")) == set()
    assert h.apply(p.EvalResult("stale", "val", 1, 1, {"loss": 1.0})) == set()
    assert h.apply(p.StateChanged("stale", p.FINISHED)) == set()
    assert len(h.train_loss) == 0 and not h.val and h.state == p.RUNNING
    assert h.apply(p.Log(RUN, "info", "hello")) == set()


def test_a_state_change_without_run_id_still_counts():
    h = RunHistory()
    h.apply(started())
    # an ended run changes what the metric and prediction views say
    assert h.apply(p.StateChanged(None, p.FAILED, "engine worker exited with code 1")) == \
        {"status", "metric", "prediction"}
    assert h.state == p.FAILED and "worker" in h.reason


def test_nan_loss_is_recorded_but_does_not_poison_the_smoothing():
    h = RunHistory()
    h.apply(started())
    h.apply(stats([1, 2]))
    bad = p.StepStats(RUN, [3], [0.75], [math.nan], [0.01], [math.inf], [], [], [], [], [], 1.0, None, 0.4)
    h.apply(bad)
    assert math.isnan(h.train_loss.last[1]) and math.isfinite(h.train_loss_smooth.last[1])


def test_the_scripted_run_matches_its_script():
    h = RunHistory()
    for event in scripted_run():
        h.apply(event)
    assert len(h.train_loss) == 200 and len(h.val["accuracy"]) == 4
    assert h.markers == [(120, "lr x2")] and h.predictions.kind == "grid"
    assert set(h.layer_grad) == {"fc1", "fc2", "head"} and len(h.layer_grad["fc1"]) == 16


def test_change_labels():
    assert change_label({"lr": [0.02, 0.01]}) == "lr /2"
    assert change_label({"lr": [0.01, 0.03]}) == "lr x3"
    assert change_label({"lr": [0.01, 0.015]}) == "lr 0.01→0.015"
    assert change_label({"grad_clip": [None, 1.0], "weight_decay": [0.0, 0.01]}) == \
        "grad_clip off→1, weight_decay 0→0.01"


def test_a_long_run_keeps_the_history_bounded():
    """300,000 steps (every statistic, four layers, an evaluation every 1,000 steps). A series keeps at most
    2 x 4,096 buckets however long the run (series.RAW_CAP), so the history stops growing long before 150k
    steps: memory after 300k steps is what it was after 150k."""
    import tracemalloc

    history = RunHistory()
    layers = ["fc1", "fc2", "fc3", "head"]
    history.apply(p.RunStarted(run_id="r", run_dir="runs/r", name="long", task="binary", loss="bce",
                               device="cpu", params=1, trainable=1, splits={}, steps_per_epoch=1000,
                               total_steps=300_000, epochs=300, start_step=0, start_epoch=0, config={},
                               layers=layers))

    def feed(start: int, stop: int) -> None:
        for first in range(start, stop, 250):
            steps = list(range(first + 1, first + 251))
            sampled = steps[9::10]
            history.apply(p.StepStats(
                run_id="r", step=steps, epoch=steps[-1] / 1000, loss=[1 / s for s in steps],
                lr=[1e-3] * 250, acc_steps=steps[3::4], acc=[0.9] * len(steps[3::4]), layer_steps=sampled,
                grad_norm=[0.5] * 25, layer_grad_norm=[[0.1] * 4] * 25, update_ratio=[[1e-3] * 4] * 25,
                samples_per_s=1e5, eta_s=1.0, progress=steps[-1] / 300_000))
            if steps[-1] % 1000 == 0:
                history.apply(p.EvalResult("r", "val", steps[-1], steps[-1] // 1000, {"loss": 0.1, "accuracy": 0.9}))

    tracemalloc.start()
    feed(0, 150_000)
    early = tracemalloc.get_traced_memory()[0]
    feed(150_000, 300_000)
    late, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert len(history.train_loss) == 300_000
    print(f"\nhistory after 150k steps {early / 2**20:.2f} MiB, after 300k {late / 2**20:.2f} MiB, "
          f"peak {peak / 2**20:.2f} MiB")
    assert abs(late - early) < 256 * 2**10, (early, late)  # flat
    assert late < 8 * 2**20 and peak < 16 * 2**20, (late, peak)
