"""x and r ask while a run is active; space after x offers to resume the stopped run (issue 14 item 3)."""

import dataclasses

from torchtui.engine import protocol as p

from .conftest import until
from .fakes import scripted_run

RUN = "20261122-120000-moons"


def title(app) -> str:
    """The title of the dialog on top ("" while there is none)."""
    found = app.screen.query("#title")
    return str(found.first().content) if found else ""


def sent(app, kind) -> list:
    return [c for c in app.fake_host.sent if isinstance(c, kind)]


async def test_x_asks_first_and_x_again_stops(fake_app):
    async with fake_app.run_test(size=(120, 40)) as pilot:
        fake_app.fake_host.emit(*scripted_run()[:3])
        await until(pilot, lambda: fake_app.history.state == p.RUNNING, what="running")
        await pilot.press("x")
        await until(pilot, lambda: "Stop the run?" in title(fake_app), what="asked")
        await pilot.press("n")
        await pilot.pause()
        assert not sent(fake_app, p.Stop)
        await pilot.press("x", "x")
        await until(pilot, lambda: sent(fake_app, p.Stop), what="stop sent")


async def test_r_asks_then_stops_and_starts_afresh(fake_app):
    async with fake_app.run_test(size=(120, 40)) as pilot:
        fake_app.fake_host.emit(*scripted_run()[:3])
        await until(pilot, lambda: fake_app.history.state == p.RUNNING, what="running")
        await pilot.press("r")
        await pilot.pause()
        assert not sent(fake_app, p.Stop)
        await pilot.press("y")
        await until(pilot, lambda: sent(fake_app, p.Stop), what="stop sent")
        fake_app.fake_host.emit(p.StateChanged(RUN, p.STOPPED))
        await until(pilot, lambda: sent(fake_app, p.Start), what="a new start")
        assert sent(fake_app, p.Start)[-1].resume is None


async def test_space_after_a_stop_offers_to_resume_from_last_pt(fake_app, tmp_path):
    run_dir = tmp_path / RUN
    (run_dir / "checkpoints").mkdir(parents=True)
    (run_dir / "checkpoints" / "last.pt").write_bytes(b"stand-in")
    started = dataclasses.replace(scripted_run()[0], run_dir=str(run_dir), config=fake_app.config.to_dict())
    async with fake_app.run_test(size=(120, 40)) as pilot:
        fake_app.fake_host.emit(started, p.StateChanged(RUN, p.RUNNING), *scripted_run()[2:4],
                                p.StateChanged(RUN, p.STOPPED))
        await until(pilot, lambda: fake_app.history.state == p.STOPPED, what="stopped")
        fake_app.set_focus(None)
        await pilot.press("space")
        await until(pilot, lambda: "Resume" in title(fake_app), what="offered")
        await pilot.press("y")
        await until(pilot, lambda: sent(fake_app, p.Start), what="start sent")
        assert sent(fake_app, p.Start)[-1].resume == str(run_dir)
        # A setup edited since (a wider layer) is another run: space starts it without asking.
        resumed = dataclasses.replace(started, request_id=sent(fake_app, p.Start)[-1].request_id)
        fake_app.fake_host.emit(resumed, p.StateChanged(RUN, p.RUNNING), p.StateChanged(RUN, p.STOPPED))
        await until(pilot, lambda: fake_app.runner.asked is None and fake_app.history.state == p.STOPPED,
                    what="the resumed run started and stopped again")
        model = fake_app.config.model
        wider = dataclasses.replace(model, layers=[dataclasses.replace(model.layers[0], units=128), *model.layers[1:]])
        fake_app.config = dataclasses.replace(fake_app.config, model=wider)
        await pilot.press("space")
        await until(pilot, lambda: len(sent(fake_app, p.Start)) == 2, what="a new run")
        assert sent(fake_app, p.Start)[-1].resume is None


async def test_opening_a_preset_while_paused_asks_what_becomes_of_the_run(fake_app):
    async with fake_app.run_test(size=(120, 40)) as pilot:
        fake_app.fake_host.emit(*scripted_run()[:3], p.StateChanged(RUN, p.PAUSED))
        await until(pilot, lambda: fake_app.history.state == p.PAUSED, what="paused")
        fake_app.call_later(fake_app.presets.open_asking, "spiral")
        await until(pilot, lambda: "A run is active" in title(fake_app), what="asked")
        await pilot.press("o")
        await until(pilot, lambda: fake_app.config.name == "spiral", what="spiral in the panes")
        assert not sent(fake_app, p.Stop) and "keeps its own setup" in fake_app.notice
        fake_app.call_later(fake_app.presets.open_asking, "xor")
        await until(pilot, lambda: "A run is active" in title(fake_app), what="again")
        await pilot.press("y")
        await until(pilot, lambda: sent(fake_app, p.Stop) and fake_app.config.name == "xor", what="stopped, opened")


async def test_the_status_bar_says_when_keys_go_to_a_field(fake_app):
    async with fake_app.run_test(size=(120, 40)) as pilot:
        await until(pilot, lambda: fake_app.panes_ready, what="panes")
        await pilot.press("3")  # the Hparams pane
        lr = fake_app.query_one("#train-lr")
        lr.focus()
        await until(pilot, lambda: "⌨ lr (Hparams)" in str(fake_app.main.status_bar.content), what="typing shown")
        await pilot.press("escape")
        await until(pilot, lambda: "⌨" not in str(fake_app.main.status_bar.content), what="keys back to the app")


def test_the_app_offers_a_resume_exactly_where_the_engine_takes_one():
    """Which fields may change when a run resumes had two homes that disagreed (the app refused a resume on
    another device the engine takes). Each single edit: the app's offer and the engine's answer agree."""
    from torchtui.engine import presets
    from torchtui.engine.run.prepare import resume_edits
    from torchtui.engine.schema import ConfigError
    from torchtui.tui.controllers.run_control import can_resume

    saved = presets.load("moons").to_dict()
    edits = {"name": "other", "description": "x", "train.epochs": 99, "train.lr": 0.5, "train.weight_decay": 0.1,
             "train.grad_clip": 1.0, "device.device": "cpu", "device.devices": "2", "device.threads": 3,
             "train.batch_size": 17, "train.optimizer": "sgd", "data.n_samples": 500, "data.noise": 0.3,
             "model.layers": [32], "train.scheduler": "step", "device.precision": "bf16", "train.seed": 7}
    assert len(edits) > 15
    for path, value in edits.items():
        wanted = {**saved, **{k: dict(v) if isinstance(v, dict) else v for k, v in saved.items()}}
        section, _, field = path.partition(".")
        if field:
            wanted[section][field] = value
        else:
            wanted[section] = value
        try:
            resume_edits(saved, wanted, "last.pt")
            engine = True
        except ConfigError:
            engine = False
        assert can_resume(saved, wanted) == engine, path


async def test_space_again_while_the_run_is_starting_pauses_it_instead_of_starting_another(fake_app):
    # Found trying the app: space, then space ~1 s later while the run was still making its data, sent a
    # second Start ("a run is already active") instead of pausing the run being started.
    async with fake_app.run_test(size=(120, 40)) as pilot:
        fake_app.set_focus(None)
        await pilot.press("space")
        await until(pilot, lambda: sent(fake_app, p.Start), what="start sent")
        await pilot.press("space")
        await until(pilot, lambda: sent(fake_app, p.Pause), what="pause sent")
        await pilot.press("space")
        await until(pilot, lambda: sent(fake_app, p.Resume), what="resume sent")
        assert len(sent(fake_app, p.Start)) == 1
        kinds = [type(c) for c in fake_app.fake_host.sent if isinstance(c, (p.Start, p.Pause, p.Resume))]
        assert kinds == [p.Start, p.Pause, p.Resume]  # in the order the engine must apply them
        start = sent(fake_app, p.Start)[0]
        fake_app.fake_host.emit(dataclasses.replace(scripted_run()[0], request_id=start.request_id),
                                p.StateChanged(RUN, p.RUNNING))
        await until(pilot, lambda: fake_app.history.state == p.RUNNING, what="running")
        await pilot.press("space")
        await until(pilot, lambda: len(sent(fake_app, p.Pause)) == 2, what="an ordinary pause")


async def test_r_on_a_run_with_last_pt_starts_afresh_without_offering_a_resume(fake_app, tmp_path):
    """Issue 26 item 4: r stopped the run, then went through space's path, which offers to resume a stopped run
    with a last.pt and the same setup: the new run waited on a dialog that r had already answered."""
    run_dir = tmp_path / RUN
    (run_dir / "checkpoints").mkdir(parents=True)
    (run_dir / "checkpoints" / "last.pt").write_bytes(b"stand-in")
    started = dataclasses.replace(scripted_run()[0], run_dir=str(run_dir), config=fake_app.config.to_dict())
    async with fake_app.run_test(size=(120, 40)) as pilot:
        fake_app.fake_host.emit(started, *scripted_run()[1:3])
        await until(pilot, lambda: fake_app.history.state == p.RUNNING, what="running")
        await pilot.press("r", "r")
        await until(pilot, lambda: sent(fake_app, p.Stop), what="stop sent")
        fake_app.fake_host.emit(p.StateChanged(RUN, p.STOPPED))
        await until(pilot, lambda: sent(fake_app, p.Start) or title(fake_app).startswith("Resume"),
                    what="a new start (or a question)")
        assert not title(fake_app), f"r asked again: {title(fake_app)}"
        assert sent(fake_app, p.Start)[-1].resume is None


async def test_r_after_a_stop_starts_a_new_run_where_space_offers_the_resume(fake_app, tmp_path):
    """r is "a new run from step 0" in every state: after x it went through space's resume question too."""
    run_dir = tmp_path / RUN
    (run_dir / "checkpoints").mkdir(parents=True)
    (run_dir / "checkpoints" / "last.pt").write_bytes(b"stand-in")
    started = dataclasses.replace(scripted_run()[0], run_dir=str(run_dir), config=fake_app.config.to_dict())
    async with fake_app.run_test(size=(120, 40)) as pilot:
        fake_app.fake_host.emit(started, *scripted_run()[1:3], p.StateChanged(RUN, p.STOPPED))
        await until(pilot, lambda: fake_app.history.state == p.STOPPED, what="stopped")
        fake_app.set_focus(None)
        await pilot.press("r")
        await until(pilot, lambda: sent(fake_app, p.Start) or title(fake_app), what="a start (or a question)")
        assert not title(fake_app) and sent(fake_app, p.Start)[-1].resume is None
