"""What the status bar says (issue 26 item 9): a field by the label the pane gives it, not its widget id or
config path; no speed while paused; a notice that holds whatever the run's state becomes."""

from torchtui.engine import protocol as p

from .conftest import until
from .fakes import scripted_run

RUN = "20261122-120000-moons"


def status(app) -> str:
    return str(app.main.status_bar.content)


async def test_the_status_bar_names_a_field_as_its_pane_labels_it(fake_app):
    app = fake_app
    async with app.run_test(size=(120, 40)) as pilot:
        await until(pilot, lambda: app.panes_ready, what="panes mounted")
        await pilot.press("3")
        app.query_one("#train-lr").focus()
        await until(pilot, lambda: "⌨ lr (Hparams)" in status(app), what=f"lr named: {status(app)!r}")
        await pilot.press("2")
        app.query_one("#model-layers-0-units").focus()
        await until(pilot, lambda: "⌨ units, layer 1 (Model)" in status(app), what=f"units named: {status(app)!r}")
        assert "model." not in status(app) and "layers-0" not in status(app)


async def test_no_stale_speed_while_paused_and_a_notice_true_in_every_state(fake_app):
    app = fake_app
    async with app.run_test(size=(120, 40)) as pilot:
        app.fake_host.emit(*scripted_run()[:3])
        await until(pilot, lambda: "41,000 samples/s" in status(app), what="the speed while running")
        app.call_later(app.presets.open_asking, "spiral")  # opened for the next start: the run keeps its setup
        await until(pilot, lambda: app.screen.query("#extra"), what="asked")
        await pilot.press("o")
        await until(pilot, lambda: app.config.name == "spiral", what="spiral in the panes")
        assert "keeps its own setup" in app.notice and "space resumes" not in app.notice  # it is running
        app.fake_host.emit(p.StateChanged(RUN, p.PAUSED))
        await until(pilot, lambda: " paused " in status(app), what="paused")
        assert "samples/s" not in status(app) and "ETA" not in status(app)
        assert "epoch 0.50/4" in status(app)  # where it paused still shows


async def test_a_setup_edit_while_running_names_the_field_as_its_pane_does(fake_app):
    """The same class: "train.batch_size: applies on restart (r)" spoke in config paths."""
    app = fake_app
    async with app.run_test(size=(120, 40)) as pilot:
        await until(pilot, lambda: app.panes_ready, what="panes mounted")
        app.fake_host.emit(*scripted_run()[:3])
        await until(pilot, lambda: app.history.state == p.RUNNING, what="running")
        await pilot.press("3")
        app.query_one("#train-batch_size").focus()
        await pilot.press("end", "9")
        await until(pilot, lambda: "applies on restart" in app.notice, what="the notice")
        assert app.notice == "batch_size (Hparams): applies on restart (r)"
