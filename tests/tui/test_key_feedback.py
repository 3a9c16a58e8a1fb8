"""Every key answers (issue 14, item 8): e logs, t/n/e say why they cannot act, v at >= 120 columns gives the
charts the whole width, and the lr chart's title follows a live change confirmed while paused."""

from torchtui.engine import protocol as p

from .conftest import until
from .fakes import scripted_run

RUN = "20261122-120000-moons"


def notes(app, monkeypatch) -> list[str]:
    said: list[str] = []
    monkeypatch.setattr(app, "notify", lambda message, **kwargs: said.append(str(message)))
    return said


async def test_t_n_and_e_without_a_run_or_an_error_say_so(fake_app, monkeypatch):
    said = notes(fake_app, monkeypatch)
    async with fake_app.run_test(size=(160, 48)) as pilot:
        await until(pilot, lambda: fake_app.panes_ready, what="panes mounted")
        for count, key in enumerate(("t", "e"), start=1):
            await pilot.press(key)
            await until(pilot, lambda n=count: len(said) >= n, what=f"{key} answered")
        assert said[0].startswith("no error to show")
        assert said[1].startswith("e evaluates a running or paused run")
        assert not any(isinstance(c, (p.Step, p.EvaluateNow)) for c in fake_app.fake_host.sent)


async def test_n_with_no_run_starts_one_paused_and_takes_one_step(fake_app):
    async with fake_app.run_test(size=(160, 48)) as pilot:
        await until(pilot, lambda: fake_app.panes_ready, what="panes mounted")
        await pilot.press("n")
        await until(pilot, lambda: any(isinstance(c, p.Step) for c in fake_app.fake_host.sent), what="step sent")
        kinds = [type(c) for c in fake_app.fake_host.sent if isinstance(c, (p.Start, p.Pause, p.Step))]
        assert kinds == [p.Start, p.Pause, p.Step]  # in this order: the Pause lands before the first step
        assert any("started paused" in line for line in fake_app.log_pane.lines_written)


async def test_e_logs_the_request_and_the_result(fake_app):
    async with fake_app.run_test(size=(160, 48)) as pilot:
        fake_app.fake_host.emit(*scripted_run()[:3])
        await until(pilot, lambda: fake_app.history.state == p.RUNNING and fake_app.history.last_stats, what="running")
        await pilot.press("e")
        await until(pilot, lambda: any(isinstance(c, p.EvaluateNow) for c in fake_app.fake_host.sent), what="sent")
        assert any(line.startswith("evaluating the val split now (step 25)")
                   for line in fake_app.log_pane.lines_written)
        fake_app.fake_host.emit(p.EvalResult(RUN, "val", 25, 0, {"loss": 0.4, "accuracy": 0.875}))
        await until(pilot, lambda: any(line.startswith("val at step 25: loss 0.4, accuracy 0.875")
                                       for line in fake_app.log_pane.lines_written), what="result logged")


async def test_v_at_wide_screens_gives_the_charts_the_whole_width_and_back(fake_app):
    async with fake_app.run_test(size=(160, 48)) as pilot:
        await until(pilot, lambda: fake_app.panes_ready, what="panes mounted")
        setup, charts = fake_app.query_one("#setup"), fake_app.query_one("#charts")
        narrow = charts.size.width
        await pilot.press("v")
        await pilot.pause()
        assert not setup.display and charts.size.width == 160 > narrow
        await pilot.press("v")
        await pilot.pause()
        assert setup.display and charts.size.width == narrow
        await pilot.press("v", "1")  # a pane key brings the setup back too
        await pilot.pause()
        assert setup.display


async def test_the_lr_title_shows_a_live_change_confirmed_while_paused(fake_app):
    async with fake_app.run_test(size=(160, 48)) as pilot:
        fake_app.fake_host.emit(*scripted_run()[:3], p.StateChanged(RUN, p.PAUSED))
        await until(pilot, lambda: fake_app.history.state == p.PAUSED, what="paused")
        lr = fake_app.charts["lr-chart"]
        lr.redraw()
        assert "lr 0.003" in lr.render().plain
        await pilot.press("plus")
        await until(pilot, lambda: any(isinstance(c, p.SetHparams) for c in fake_app.fake_host.sent), what="sent")
        fake_app.fake_host.emit(p.HparamsChanged(RUN, 25, {"lr": [0.003, 0.006]}))
        await until(pilot, lambda: fake_app.history.markers, what="change confirmed")
        lr.redraw()
        assert "lr 0.006" in lr.render().plain.split("\n")[0]
        # steps buffered from before the change do not undo it in the title
        fake_app.history.apply(p.StepStats(RUN, step=[24, 25], epoch=0.5, loss=[0.5, 0.5], lr=[0.003, 0.003],
                                           acc_steps=[], acc=[], layer_steps=[], grad_norm=[], layer_grad_norm=[],
                                           update_ratio=[], samples_per_s=1.0, eta_s=None, progress=0.1))
        assert fake_app.history.lr_now == 0.006


async def test_steps_streaming_in_repaint_the_status_bar_not_the_whole_screen(fake_app, monkeypatch):
    """Issue 26 item 10: a flush of steps changes the screen's reactives (state, status_version); each change
    repainted the whole screen, every widget re-rendered ten times a second while training (65 % of the UI's
    core at 80x24), so keys waited behind full repaints on a loaded machine."""
    async with fake_app.run_test(size=(80, 24)) as pilot:
        await until(pilot, lambda: fake_app.panes_ready, what="panes mounted")
        whole: list[dict] = []
        screen_refresh = fake_app.main.refresh

        def refresh(*regions, **kwargs):
            if not regions and not kwargs.get("layout"):
                whole.append(kwargs)
            return screen_refresh(*regions, **kwargs)

        monkeypatch.setattr(fake_app.main, "refresh", refresh)
        fake_app.fake_host.emit(*scripted_run())
        await until(pilot, lambda: len(fake_app.history.train_loss) == 200, what="200 steps")
        await until(pilot, lambda: "epoch 4.00/4" in str(fake_app.query_one("#status").render()),
                    what="the status bar's last figures")
        assert whole == []


async def test_numbers_changing_length_do_not_lay_the_screen_out_again(fake_app):
    """Issue 26 item 10: at 80 columns the run's line wrapped or not as samples/s and the ETA changed length,
    so the status bar grew and shrank a line, and each time the screen was laid out and every chart rebuilt
    at its new size (plotext, the better part of the UI's work while training)."""
    from rich.text import Text

    async with fake_app.run_test(size=(80, 24)) as pilot:
        await until(pilot, lambda: fake_app.panes_ready, what="panes mounted")
        bar, heights = fake_app.main.status_bar, []
        short, long = " running   epoch 4.00/100  9,614 samples/s", " running   epoch 4.00/100  " + "x" * 70
        for i in range(6):
            bar.update(Text(long if i % 2 else short))
            await pilot.pause()
            await pilot.pause()
            heights.append(bar.size.height)
        assert heights == [1, 2, 2, 2, 2, 2]  # it grew once, and keeps the line rather than flapping
        bar.update(Text(short + "\n✗ train.lr: must be a positive number"))  # a line of its own: laid out
        await pilot.pause()
        await pilot.pause()
        bar.update(Text(short))
        await pilot.pause()
        await pilot.pause()
        assert bar.size.height == 1
