"""No sequence of engine events can make the history or a chart built from it raise (hypothesis).

Steps in any order, repeated, going back (a resume from an earlier checkpoint), with gaps and non-finite
values; runs started, resumed and replaced; evaluations, live changes and state changes in between. After
every event each chart is built at two sizes, headless, as the app would draw it.
"""

from __future__ import annotations

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from torchtui.engine import protocol as p
from torchtui.engine.history import RunHistory
from torchtui.tui.charts.registry import CHARTS

RUNS = ["r1", "r1", "r1", "r2"]  # mostly the current run: events of others are ignored
NUMBERS = st.one_of(st.floats(min_value=-1e6, max_value=1e6), st.floats(min_value=0, max_value=1),
                    st.floats(allow_nan=True, allow_infinity=True, width=64), st.sampled_from([0.0, 1e-30, 1e30]))
STEPS = st.lists(st.integers(-5, 30_000), min_size=0, max_size=12)


@st.composite
def started(draw):
    run = draw(st.sampled_from(RUNS))
    task = draw(st.sampled_from(["binary", "multiclass", "regression"]))
    return p.RunStarted(run_id=run, run_dir=f"runs/{run}", name=run, task=task, loss="x", device="cpu", params=1,
                        trainable=1, splits={"train": 10, "val": 2}, steps_per_epoch=draw(st.integers(1, 50)),
                        total_steps=draw(st.integers(0, 10_000)), epochs=3,
                        start_step=draw(st.integers(0, 30_000)), start_epoch=0, config={},
                        class_names=["a", "b", "c"], layers=["fc1", "head"])


@st.composite
def step_stats(draw):
    steps = draw(STEPS)
    acc_steps = draw(st.lists(st.sampled_from(steps), max_size=len(steps))) if steps else []
    layer_steps = draw(st.lists(st.sampled_from(steps), max_size=3)) if steps else []
    width = draw(st.integers(0, 3))
    return p.StepStats(run_id=draw(st.sampled_from(RUNS)), step=steps, epoch=draw(NUMBERS),
                       loss=[draw(NUMBERS) for _ in steps], lr=[draw(NUMBERS) for _ in steps],
                       acc_steps=acc_steps, acc=[draw(NUMBERS) for _ in acc_steps], layer_steps=layer_steps,
                       grad_norm=[draw(NUMBERS) for _ in layer_steps],
                       layer_grad_norm=[[draw(NUMBERS) for _ in range(width)] for _ in layer_steps],
                       update_ratio=[[draw(NUMBERS) for _ in range(width)] for _ in layer_steps],
                       samples_per_s=draw(NUMBERS), eta_s=None, progress=0.5)


@st.composite
def evaluated(draw):
    metrics = {"loss": draw(NUMBERS), "accuracy": draw(NUMBERS), "mse": draw(NUMBERS)}
    confusion = draw(st.one_of(st.none(), st.just([[1, 2], [3, 4]])))
    return p.EvalResult(draw(st.sampled_from(RUNS)), draw(st.sampled_from(["val", "test"])),
                        draw(st.integers(-5, 30_000)), 0, metrics, confusion, {"act": draw(NUMBERS)})


EVENTS = st.one_of(
    started(), step_stats(), step_stats(), step_stats(), evaluated(),
    st.builds(p.HparamsChanged, st.sampled_from(RUNS), st.integers(-5, 30_000),
              st.fixed_dictionaries({"lr": st.tuples(NUMBERS, NUMBERS), "base_lr": st.tuples(NUMBERS, NUMBERS)})),
    st.builds(p.StateChanged, st.sampled_from([*RUNS, None]), st.sampled_from([p.RUNNING, p.PAUSED, p.STOPPED,
                                                                              p.FAILED])),
    st.builds(p.RunFinished, st.sampled_from(RUNS), st.just(p.STOPPED), st.just({"test": {"loss": 1.0}})),
)


def _resumed_behind() -> list:
    """What the app met (issue: steering): a history to step 24,288, then the run resumed near step 4."""
    start = p.RunStarted(run_id="r1", run_dir="runs/r1", name="r1", task="binary", loss="x", device="cpu", params=1,
                         trainable=1, splits={"train": 10}, steps_per_epoch=10, total_steps=0, epochs=0,
                         start_step=0, start_epoch=0, config={}, layers=["fc1"])

    def stats(steps):
        return p.StepStats(run_id="r1", step=steps, epoch=1.0, loss=[0.5] * len(steps), lr=[0.01] * len(steps),
                           acc_steps=steps, acc=[0.9] * len(steps), layer_steps=[], grad_norm=[],
                           layer_grad_norm=[], update_ratio=[], samples_per_s=1.0, eta_s=None, progress=0.0)

    return [start, stats(list(range(24_280, 24_289))), start, stats(list(range(4, 9)))]


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(events=st.lists(EVENTS, min_size=1, max_size=12))
@example(events=_resumed_behind())
def test_no_event_sequence_breaks_the_history_or_a_chart(events):
    history = RunHistory()
    charts = [slot.load()(history) for slot in CHARTS]
    for event in events:
        history.apply(event)
        for chart in charts:
            for width, height in ((60, 16), (150, 40)):
                chart.build_text(width, height)
