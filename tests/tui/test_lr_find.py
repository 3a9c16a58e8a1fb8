"""The LR range test in the app: f opens its screen, an LrFound draws the curve, a applies the suggested lr."""

from torchtui.engine import protocol as p
from torchtui.tui.screens.lr_find import LrFindScreen

from .conftest import until
from .fakes import lr_found, scripted_run


def sent(app, kind) -> list:
    return [c for c in app.fake_host.sent if isinstance(c, kind)]


async def open_and_answer(app, pilot, **found):
    """Press f, check the request, answer it (after a stale reply, which must be ignored)."""
    await pilot.press("f")
    await until(pilot, lambda: isinstance(app.screen, LrFindScreen) and sent(app, p.FindLr), what="screen + request")
    screen, request = app.screen, sent(app, p.FindLr)[-1]
    app.fake_host.emit(lr_found(request.request_id + 100, **found))  # another client's: not ours to show
    await until(pilot, lambda: not app.bridge.host.events.qsize(), what="stale reply drained")
    await pilot.pause()
    assert screen.found is None and screen.chart.placeholder() == screen.chart.waiting
    app.fake_host.emit(lr_found(request.request_id, **found))
    await until(pilot, lambda: screen.found is not None and not screen.chart.dirty, what="chart drawn")
    assert screen.chart.points_plotted >= 80  # the curve, plus the marked suggestion
    assert "suggested 0.015" in str(screen.chart.render())
    assert "suggested lr 0.015" in str(screen.query_one("#lr-info").render())
    return screen, request


async def test_idle_f_tests_the_setup_and_a_sets_the_hparams_lr(fake_app):
    app = fake_app
    async with app.run_test(size=(160, 48)) as pilot:
        await until(pilot, lambda: app.panes_ready, what="panes mounted")
        screen, request = await open_and_answer(app, pilot)
        assert request.config["train"]["lr"] == app.config.train.lr and request.config["name"] == "moons"
        assert "a apply 0.015 to train.lr" in str(screen.query_one("#lr-hint").render())
        await pilot.press("a")
        await until(pilot, lambda: not isinstance(app.screen, LrFindScreen), what="screen closed")
        assert app.config.train.lr == 0.015
        assert app.query_one("#train-lr").value == "0.015"
        assert not sent(app, p.SetHparams)  # no run: nothing live to change


async def test_during_a_run_f_tests_a_copy_and_a_sends_a_live_lr_change(fake_app):
    app = fake_app
    async with app.run_test(size=(80, 24)) as pilot:
        await until(pilot, lambda: app.panes_ready, what="panes mounted")
        run_id = "20261122-120000-moons"
        app.fake_host.emit(*scripted_run(run_id)[:2])  # started, running
        await until(pilot, lambda: app.history.state == p.RUNNING, what="running")
        screen, request = await open_and_answer(app, pilot, run_id=run_id, step=120)
        assert request.config == {}  # the engine takes the run's own model and optimizer
        assert f"from run {run_id} at step 120" in str(screen.query_one("#lr-title").render())
        lr_before = app.config.train.lr
        await pilot.press("a")
        await until(pilot, lambda: sent(app, p.SetHparams), what="live change sent")
        # The range test measured the lr that works now: the next step's lr (the schedule is scaled to it), not
        # the base the schedule is shaped from (train.lr).
        assert sent(app, p.SetHparams)[-1] == p.SetHparams(current_lr=0.015)
        assert app.config.train.lr == lr_before  # the pane follows the engine's HparamsChanged, not the key


async def test_escape_closes_without_a_change_and_an_error_is_shown(fake_app):
    app = fake_app
    async with app.run_test(size=(160, 48)) as pilot:
        await until(pilot, lambda: app.panes_ready, what="panes mounted")
        await pilot.press("f")
        await until(pilot, lambda: isinstance(app.screen, LrFindScreen) and sent(app, p.FindLr), what="screen")
        screen = app.screen
        app.fake_host.emit(p.LrFound(sent(app, p.FindLr)[-1].request_id, error="train.optimizer: unknown 'adamm'"))
        await until(pilot, lambda: screen.found is not None, what="error shown")
        assert "adamm" in str(screen.query_one("#lr-info").render())
        await pilot.press("a")  # nothing to apply: the screen stays
        await pilot.pause()
        assert app.screen is screen
        await pilot.press("escape")
        await until(pilot, lambda: not isinstance(app.screen, LrFindScreen), what="closed")
        assert not sent(app, p.SetHparams) and app.config.train.lr == 0.003


async def test_a_reply_that_came_before_the_screen_was_mounted_is_drawn_once_it_is():
    """show() before mounting kept the reply for on_mount, whose show() then returned early: Textual sets
    is_mounted only after on_mount, so the curve and the suggestion never showed (the rewind list's bug too)."""
    from textual.app import App

    screen = LrFindScreen("the setup", "train.lr", rerun=lambda: None)
    screen.show(lr_found(1))

    class Host(App):
        def on_mount(self) -> None:
            self.push_screen(screen)

    app = Host()
    async with app.run_test(size=(120, 40)) as pilot:
        await until(pilot, lambda: app.screen is screen and hasattr(screen, "chart") and not screen.chart.dirty,
                    what="the screen up, its chart drawn")
        assert "suggested lr 0.015" in str(screen.query_one("#lr-info").render())
