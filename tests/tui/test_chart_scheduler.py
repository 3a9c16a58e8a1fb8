"""The chart scheduler's share of the UI thread (issue 26 item 10)."""

from torchtui.tui.charts import scheduler as sched


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class SlowChart:
    """A chart whose build takes `cost` seconds of the fake clock, as plotext's do on a loaded machine."""

    group, display = "loss", True

    def __init__(self, clock: Clock, cost: float):
        self.clock, self.cost, self.dirty, self.builds = clock, cost, True, 0

    class size:  # noqa: N801 - a stand-in for Textual's Size
        width = 80

    def mark_dirty(self):
        self.dirty = True

    def redraw(self):
        self.clock.now += self.cost
        self.builds += 1
        self.dirty = False


def test_chart_builds_take_a_bounded_share_of_the_ui_thread_but_key_redraws_are_not_held(monkeypatch):
    """Ten ticks a second each rebuilt a chart however long it took: with builds of 80 ms (a loaded 2-core
    machine) the UI thread did little else, and keys waited behind them. Round-robin builds now rest in
    proportion to what the last one took; a chart a key changed is drawn at once."""
    clock = Clock()
    monkeypatch.setattr(sched.time, "monotonic", clock)
    monkeypatch.setattr(sched.time, "perf_counter", clock)
    charts = {f"c{i}": SlowChart(clock, 0.080) for i in range(5)}
    scheduler = sched.ChartScheduler(charts)
    for tick in range(50):  # five seconds of 100 ms ticks, the charts dirty all along
        clock.now = max(clock.now, tick * 0.1)
        scheduler.changed({"loss"})
        scheduler.redraw_one()
    built = sum(c.builds for c in charts.values())
    assert built * 0.080 <= 5.0 / 3  # a third of the five seconds at most (all of it before)
    assert built >= 10  # still drawn: ten builds or more in the five seconds
    before = charts["c2"].builds
    scheduler.urgent("c2")  # l, g or a live change: the user is looking at it now
    scheduler.changed({"loss"})
    scheduler.redraw_one()
    assert charts["c2"].builds == before + 1
