"""Snapshots of the main screen at 80x24 and 160x48, fed a fixed event stream (no engine, no clock)."""

import pytest

from torchtui.engine import presets
from torchtui.tui.app import TorchTUI
from torchtui.tui.bridge import EngineBridge

from .conftest import until
from .fakes import FakeHost, scripted_run

CHARTS = ("loss-chart", "metric-chart", "grad-chart", "lr-chart", "prediction")


@pytest.fixture
def fixed_app(monkeypatch):
    monkeypatch.setattr("torchtui.tui.widgets.log_pane.stamp", lambda: "12:00:00 ")
    host = FakeHost()
    return TorchTUI(presets.load("moons"), EngineBridge(host)), host


def replay(app, host, charts_view: bool):
    async def run_before(pilot):
        host.emit(*scripted_run())
        await until(pilot, lambda: len(app.history.train_loss) == 200, what="the scripted run")
        if charts_view:
            await pilot.press("v")
        await until(pilot, lambda: app.panes_ready, what="panes mounted")  # the charts come in before the panes
        shown = [app.charts[c] for c in CHARTS if app.charts[c].display]
        # a chart just made visible has no size until the next layout: wait for size, then for a redraw
        await until(pilot, lambda: all(c.size.width and not c.dirty for c in shown), what="charts drawn")
        await pilot.pause()
    return run_before


def test_main_screen_160x48(snap_compare, fixed_app):
    app, host = fixed_app
    assert snap_compare(app, terminal_size=(160, 48), run_before=replay(app, host, charts_view=False))


def test_charts_view_80x24(snap_compare, fixed_app):
    app, host = fixed_app
    assert snap_compare(app, terminal_size=(80, 24), run_before=replay(app, host, charts_view=True))


def test_setup_view_80x24(snap_compare, fixed_app):
    app, host = fixed_app

    async def settle(pilot):
        await until(pilot, lambda: app.panes_ready, what="panes mounted")

    assert snap_compare(app, terminal_size=(80, 24), run_before=settle)
