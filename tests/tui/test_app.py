"""The app through Textual's Pilot: editing, validation, running, live lr, presets, quitting."""

import dataclasses
import re

import yaml
from textual.widgets import Select

from torchtui.engine import presets
from torchtui.engine import protocol as p
from torchtui.engine.config import from_dict
from torchtui.tui.app import TorchTUI
from torchtui.tui.bridge import EngineBridge

from .conftest import settles, until
from .fakes import DetachableFakeHost, FakeHost, scripted_run


async def test_fixed_event_stream_reaches_charts_and_status(fake_app):
    async with fake_app.run_test(size=(160, 48)) as pilot:
        fake_app.fake_host.emit(*scripted_run())
        await until(pilot, lambda: len(fake_app.history.train_loss) == 200, what="200 steps")
        await until(pilot, lambda: not any(fake_app.query_one(f"#{c}").dirty
                                           for c in ("loss-chart", "metric-chart", "grad-chart", "lr-chart",
                                                     "prediction")),
                    what="every chart redrawn")
        status = str(fake_app.query_one("#status").render())
        assert "running" in status and "epoch 4.00/4" in status and "41,000 samples/s" in status
        assert len(fake_app.history.val["accuracy"]) == 4 and fake_app.history.markers


async def test_bad_value_shows_inline_and_blocks_start(fake_app):
    async with fake_app.run_test(size=(160, 48)) as pilot:
        await pilot.press("3")
        await until(pilot, lambda: fake_app.query("#train-lr"), what="the Hparams pane mounted")
        lr = fake_app.query_one("#train-lr")
        lr.value = "abc"
        await until(pilot, lambda: fake_app.problem.startswith("train.lr"), what="problem shown")
        assert "must be a positive number" in str(fake_app.query_one("#status").render())
        fake_app.set_focus(None)
        await pilot.press("space")
        await pilot.pause()
        assert not [c for c in fake_app.fake_host.sent if isinstance(c, p.Start)]
        lr.value = "0.01"
        await until(pilot, lambda: not fake_app.problem, what="problem cleared")
        fake_app.set_focus(None)
        await pilot.press("space")
        await until(pilot, lambda: any(isinstance(c, p.Start) for c in fake_app.fake_host.sent), what="start sent")
        start = [c for c in fake_app.fake_host.sent if isinstance(c, p.Start)][0]
        assert from_dict(start.config).train.lr == 0.01


async def test_start_pause_step_live_lr_and_stop_on_a_real_engine(real_app):
    app = real_app
    async with app.run_test(size=(160, 48)) as pilot:
        await until(pilot, lambda: app.bridge.ready, what="engine ready")
        await pilot.press("space")
        await until(pilot, lambda: len(app.history.train_loss) > 20, what="training steps")
        await pilot.press("space")
        await until(pilot, lambda: app.history.state == p.PAUSED, what="paused")
        lr_before = app.history.lr.last[1]
        await pilot.press("plus")
        await until(pilot, lambda: app.history.markers, what="lr change reported")
        steps = len(app.history.train_loss)
        await pilot.press("n")
        await until(pilot, lambda: len(app.history.train_loss) == steps + 1, what="one step")
        assert app.history.lr.last[1] == lr_before * 2
        assert app.query_one("#train-lr").value in ("0.006", str(lr_before * 2))
        await pilot.press("plus", "plus", "minus")  # quicker than any step: the engine compounds them
        await until(pilot, lambda: len(app.history.markers) == 4, what="three more lr changes")
        await pilot.press("n")
        await until(pilot, lambda: len(app.history.train_loss) == steps + 2, what="another step")
        assert app.history.lr.last[1] == lr_before * 4
        await pilot.press("minus", "minus")
        await until(pilot, lambda: len(app.history.markers) == 6, what="back to the start lr")
        await pilot.press("space")
        await until(pilot, lambda: app.history.state == p.RUNNING, what="resumed")
        await pilot.press("x", "x")  # x asks while a run is active; x again (or y) says yes
        await until(pilot, lambda: app.history.state == p.STOPPED, what="stopped")
        assert app.history.lr.last[1] == lr_before


async def test_save_preset_writes_yaml_that_loads_back_equal(fake_app):
    async with fake_app.run_test(size=(160, 48)) as pilot:
        await pilot.press("ctrl+s")
        await pilot.pause()
        field = fake_app.screen.query_one("Input")
        field.value = "my-moons"
        await pilot.press("enter")
        await until(pilot, lambda: (presets.user_dir() / "my-moons.yaml").exists(), what="preset file")
        saved = yaml.safe_load((presets.user_dir() / "my-moons.yaml").read_text())
        assert from_dict(saved).data == fake_app.config.data and from_dict(saved).train == fake_app.config.train


async def test_quit_asks_while_a_run_is_active(fake_app):
    async with fake_app.run_test(size=(160, 48)) as pilot:
        fake_app.fake_host.emit(*scripted_run()[:3])
        await until(pilot, lambda: fake_app.history.state == p.RUNNING, what="running")
        await pilot.press("q")
        await pilot.pause()
        await pilot.press("y")
        await until(pilot, lambda: any(isinstance(c, p.Stop) for c in fake_app.fake_host.sent), what="stop sent")
        assert fake_app.is_running  # waits for the run to end (last.pt saved) before exiting
        fake_app.fake_host.emit(p.StateChanged("20261122-120000-moons", p.STOPPED))
        await until(pilot, lambda: not fake_app.is_running, what="exit")


async def test_error_is_shown_and_the_app_stays_up(fake_app):
    async with fake_app.run_test(size=(160, 48)) as pilot:
        fake_app.fake_host.emit(p.Error("r", "the run failed: RuntimeError: boom", "Traceback ...\nRuntimeError: boom"))
        await until(pilot, lambda: fake_app.log_pane.last_error is not None, what="error logged")
        await pilot.press("t")
        await pilot.pause()
        assert type(fake_app.screen).__name__ == "TracebackScreen"


async def test_exit_while_panes_are_still_mounting_waits_for_them(fake_app, monkeypatch):
    """A quit within the first second: Textual's teardown of a half-mounted pane would raise."""
    async def build_but_hold(app):  # the panes built, their mounting held
        app.deck.build(app.config)
        app.bridge.start()

    monkeypatch.setattr(type(fake_app), "_after_first_paint", build_but_hold)
    async with fake_app.run_test(size=(160, 48)) as pilot:
        await until(pilot, lambda: fake_app.deck.built, what="panes built (after the first frame)")
        fake_app.exit()
        await pilot.pause()
        assert fake_app.return_code is None and not fake_app.panes_ready  # deferred
        fake_app._mount_panes()
        await until(pilot, lambda: fake_app.return_code is not None, what="the app exiting")
        assert fake_app.panes_ready and fake_app.return_code == 0


async def test_tab_goes_into_the_pane_shown_v_cycles_views_and_the_palette_reaches_pane_actions(fake_app):
    async with fake_app.run_test(size=(80, 24)) as pilot:
        await until(pilot, lambda: fake_app.panes_ready, what="panes mounted")
        assert fake_app.main.tabs.active == "tab-dataset"
        await pilot.press("tab")  # into Dataset's first field (it went to the Model pane)
        await until(pilot, lambda: fake_app.focused is not None and fake_app.focused.id == "data-source",
                    what="dataset's first field")
        await pilot.press("escape", "3")
        await until(pilot, lambda: fake_app.main.tabs.active == "tab-hparams", what="hparams pane")
        assert fake_app.focused is None  # keys still go to the app
        await pilot.press("tab")
        await until(pilot, lambda: fake_app.focused is not None and fake_app.focused.id == "train-loss",
                    what="hparams' first field")
        screen = fake_app.screen
        await pilot.press("escape", "v")
        assert screen.has_class("show-charts")
        await pilot.press("v")
        assert screen.has_class("show-more") and fake_app.query_one("#lr-chart").display
        await pilot.press("v")
        assert not screen.has_class("show-charts") and not screen.has_class("show-more")
        layers = len(fake_app.pane("model").value()["layers"])
        await fake_app.run_action("edit_list('layers', 'add')")
        await pilot.pause()
        assert len(fake_app.pane("model").value()["layers"]) == layers + 1
        assert any("Add a conv block" == d for d, _ in fake_app.PALETTE_ACTIONS)


async def test_every_malformed_preset_is_shown_and_the_app_stays_up(fake_app, capsys):
    """The corpus of tests/bad_presets opened in the app: the message the CLI prints, the setup unchanged."""
    from tests.engine.test_bad_presets import CORPUS, EXPECTED
    from torchtui.cli import main as cli

    cli_lines = {}
    for name in EXPECTED:  # before the app runs: Textual captures stderr while it does
        cli.main(["train", str(CORPUS / name)])
        cli_lines[name] = capsys.readouterr().err.strip().removeprefix("torchtui: error: ")
    async with fake_app.run_test(size=(160, 48)) as pilot:
        before = fake_app.config
        for name in sorted(EXPECTED):
            cli_line = re.sub(r" \(and \d+ more\)$", "", cli_lines[name])  # the log lists them all
            assert fake_app.presets.open(str(CORPUS / name)) is False
            await pilot.pause()
            assert cli_line in [line.splitlines()[0] for line in fake_app.log_pane.lines_written[-3:]], name
            assert fake_app.config == before and fake_app.is_running
        assert fake_app.presets.open(str(presets.builtin_dir() / "spiral.yaml"))
        assert fake_app.config.name == "spiral"


GARBAGE = ("abc", "[1,", "-1e999")


async def test_garbage_in_every_field_is_shown_blocks_start_and_the_app_stays_up(fake_app):
    """Every text field of every pane (forms and list rows) fed garbage: an invalid value is marked at its
    field (or, for a cross-field check, named by the problem at its neighbour), named in the status bar,
    Start sends nothing, and the app keeps running."""
    from textual.widgets import Input

    async with fake_app.run_test(size=(160, 48)) as pilot:
        await until(pilot, lambda: fake_app.panes_ready, what="panes mounted")
        kind = fake_app.pane("model").top._controls["kind"]
        for value in ("cnn", "rnn", "custom", "mlp"):  # mounts the conv rows and every kind's fields
            kind.value = value
            await pilot.pause()
        inputs = [w for pane in fake_app.panes.values() for w in pane.query(Input)]
        assert len(inputs) > 60
        rejected = 0
        for i, field in enumerate(inputs):
            original = field.value
            for junk in GARBAGE:
                field.value = junk
                await pilot.pause()
                fake_app.setup.revalidate()  # what the debounce timer does 0.2 s after a keystroke
                assert fake_app.is_running
                if not fake_app.problem:
                    continue  # free text (a name, a path) may take it
                rejected += 1
                name = field.id.split("-")[-1]
                assert field.has_class("-error") or name in fake_app.problem, (field.id, junk, fake_app.problem)
                assert "✗" in str(fake_app.query_one("#status").render())
                if i % 8 == 0:  # pressing space on a sample of them: Start sends nothing
                    sent = len(fake_app.fake_host.sent)
                    fake_app.set_focus(None)
                    await pilot.press("space")
                    assert not any(isinstance(c, p.Start) for c in fake_app.fake_host.sent[sent:]), field.id
            field.value = original
            await pilot.pause()
            fake_app.setup.revalidate()
            assert not fake_app.problem, (field.id, fake_app.problem)
        assert rejected >= len(inputs) * 2  # most junk is invalid almost everywhere (free text is not)


async def test_a_crash_in_user_code_is_shown_with_its_traceback_and_the_app_stays_up(tmp_path):
    """A custom module that raises mid-run, on a real engine: the run fails, the log says why, t opens the
    traceback naming the user's file, and the next start trains."""
    import textwrap

    from textual.widgets import TextArea

    from torchtui.engine.host import InProcessHost
    from torchtui.tui.app import TorchTUI
    from torchtui.tui.bridge import EngineBridge

    from .conftest import settles

    module = tmp_path / "net.py"
    module.write_text(textwrap.dedent("""
        from torch import nn

        class Net(nn.Module):
            def __init__(self, in_features, num_classes):
                super().__init__()
                self.fc = nn.Linear(in_features, num_classes)
                self.calls = 0

            def forward(self, x):
                self.calls += self.training
                if self.calls > 20:
                    raise KeyError("the twenty-first batch")
                return self.fc(x)
    """))
    cfg = presets.load("moons", ["train.epochs=50", "data.n_samples=400", "model.kind=custom",
                                 f"model.module={module}:Net", "device.device=cpu"])
    host = InProcessHost(str(tmp_path / "runs"))
    app = settles(TorchTUI(cfg, EngineBridge(host), runs_dir=str(tmp_path / "runs")))
    try:
        async with app.run_test(size=(160, 48)) as pilot:
            await until(pilot, lambda: app.bridge.ready and app.panes_ready, what="engine ready")
            await pilot.press("space")
            await until(pilot, lambda: app.history.state == p.FAILED, what="the run failing")
            assert any("KeyError" in line for line in app.log_pane.lines_written)
            await pilot.press("t")
            await until(pilot, lambda: app.screen.query(TextArea), what="the traceback screen")
            text = app.screen.query_one(TextArea).text
            assert str(module) in text and "the twenty-first batch" in text
            await pilot.press("escape")
            module.write_text(module.read_text().replace("> 20", "> 10**9"))  # the user fixes the bug
            await pilot.press("space")
            await until(pilot, lambda: app.history.state in (p.RUNNING, p.FINISHED), what="a new run")
            await pilot.press("x", "x")
            await until(pilot, lambda: app.history.state in (p.STOPPED, p.FINISHED), what="stopped")
    finally:
        host.close()


async def test_d_detaches_from_a_run_server_and_q_offers_it():
    host = DetachableFakeHost()
    app = settles(TorchTUI(presets.load("moons"), EngineBridge(host)))
    async with app.run_test(size=(160, 48)) as pilot:
        host.emit(*scripted_run()[:3])
        await until(pilot, lambda: app.history.state == p.RUNNING, what="running")
        await pilot.press("q")
        await until(pilot, lambda: type(app.screen).__name__ == "ConfirmScreen", what="the quit question")
        assert "Detach (d)" in str(app.screen.query_one("#extra").label)
        await pilot.press("d")
        await until(pilot, lambda: not app.is_running, what="exit")
    assert not any(isinstance(c, (p.Stop, p.Shutdown)) for c in host.sent)  # the run goes on
    assert "torchtui attach 20261122-120000-moons" in app.farewell
    app.bridge.close()
    assert host.detached


async def test_without_a_run_server_d_says_so_and_stays(fake_app):
    async with fake_app.run_test(size=(160, 48)) as pilot:
        await pilot.press("d")
        await pilot.pause()
        assert fake_app.is_running and not fake_app.farewell


async def test_attaching_shows_the_runs_own_setup_in_the_panes(fake_app):
    spiral = presets.load("spiral")
    async with fake_app.run_test(size=(160, 48)) as pilot:
        await until(pilot, lambda: fake_app.panes_ready, what="panes mounted")
        start = scripted_run()[0]
        fake_app.fake_host.emit(dataclasses.replace(start, config=spiral.to_dict(), name="spiral"))
        await until(pilot, lambda: fake_app.config.name == "spiral", what="the run's config")
        assert fake_app.pane("dataset").value()["source"] == "spiral"
        assert fake_app.deck.sections()["model"] == spiral.to_dict()["model"]
        # the third layer's row is still mounting: let it finish before the app is torn down
        selects = lambda: fake_app.pane("model").query(Select)  # noqa: E731
        await until(pilot, lambda: all(s.is_mounted and s.query("SelectCurrent Static") for s in selects()),
                    what="the new layer rows mounted")


async def test_quit_confirmed_after_the_run_ended_by_itself_still_exits(fake_app):
    async with fake_app.run_test(size=(160, 48)) as pilot:
        fake_app.fake_host.emit(*scripted_run()[:3])
        await until(pilot, lambda: fake_app.history.state == p.RUNNING, what="running")
        await pilot.press("q")
        await until(pilot, lambda: type(fake_app.screen).__name__ == "ConfirmScreen", what="the quit question")
        fake_app.fake_host.emit(p.StateChanged("20261122-120000-moons", p.FINISHED))
        await until(pilot, lambda: fake_app.history.state == p.FINISHED, what="finished")
        await pilot.press("y")
        await until(pilot, lambda: not fake_app.is_running, what="exit")


async def test_space_before_the_engine_is_ready_starts_the_run_when_it_is():
    """Issue 14 item 4: the README's first step is "press space"; pressed while torch loads, it was dropped."""
    host = FakeHost(ready=False)
    app = settles(TorchTUI(presets.load("moons"), EngineBridge(host)))
    async with app.run_test(size=(160, 48)) as pilot:
        await until(pilot, lambda: app.panes_ready, what="panes mounted")
        await pilot.press("space")
        await pilot.pause()
        assert not any(isinstance(c, p.Start) for c in host.sent)
        assert "as soon as the engine is ready" in app.notice
        host.emit(p.EngineReady("2.13.0+cpu", 4242))
        await until(pilot, lambda: any(isinstance(c, p.Start) for c in host.sent), what="the queued start")
        host.sent.clear()
    host2 = FakeHost(ready=False)
    app2 = settles(TorchTUI(presets.load("moons"), EngineBridge(host2)))
    async with app2.run_test(size=(160, 48)) as pilot:
        await until(pilot, lambda: app2.panes_ready, what="panes mounted")
        await pilot.press("space", "space")  # the second press takes the queued start back
        host2.emit(p.EngineReady("2.13.0+cpu", 4242))
        await until(pilot, lambda: app2.bridge.ready, what="engine ready")
        await pilot.pause()
        assert not any(isinstance(c, p.Start) for c in host2.sent)


def started(start: p.Start, run_id: str) -> p.RunStarted:
    """The RunStarted a real engine sends for `start` (echoing its request id)."""
    return p.RunStarted(run_id=run_id, run_dir=f"runs/{run_id}", name=start.config.get("name", "x"), task="binary",
                        loss="bce_with_logits", device="cpu", params=10, trainable=10, splits={"train": 10},
                        steps_per_epoch=1, total_steps=300, epochs=300, start_step=0, start_epoch=0,
                        config=start.config, request_id=start.request_id)


async def test_o_checks_the_setup_on_one_batch_and_says_how_it_went(fake_app):
    async with fake_app.run_test(size=(120, 40)) as pilot:
        await until(pilot, lambda: fake_app.panes_ready, what="panes")
        fake_app.set_focus(None)
        await pilot.press("o")
        await until(pilot, lambda: any(isinstance(c, p.Start) for c in fake_app.fake_host.sent), what="start sent")
        start = [c for c in fake_app.fake_host.sent if isinstance(c, p.Start)][-1]
        config = from_dict(start.config)
        assert config.train.overfit_batches == 1 and config.name == "moons-overfit" and config.train.epochs == 300
        assert fake_app.config.train.overfit_batches == 0  # the setup in the panes is left as it was
        # Its run is known by the Start's request id, whatever it is called: a 64-character cut of a long name
        # or a "-2" suffix broke the match on "-overfit", and another client's "-overfit" run is not ours.
        fake_app.fake_host.emit(p.RunFinished("x-overfit", p.FINISHED, {"val": {"loss": 0.001}, "steps": 300}))
        run_id = "20261202-120000-moons-overfi-2"
        fake_app.fake_host.emit(started(start, run_id))
        fake_app.fake_host.emit(p.RunFinished(run_id, p.FINISHED, {"val": {"loss": 0.002}, "steps": 300}))
        await until(pilot, lambda: "sanity check passed" in "\n".join(fake_app.log_pane.lines_written), what="verdict")
        assert "\n".join(fake_app.log_pane.lines_written).count("sanity check passed") == 1
        await pilot.press("o")
        await until(pilot, lambda: len([c for c in fake_app.fake_host.sent if isinstance(c, p.Start)]) == 2,
                    what="second start")
        start = [c for c in fake_app.fake_host.sent if isinstance(c, p.Start)][-1]
        fake_app.fake_host.emit(started(start, run_id + "x"))
        fake_app.fake_host.emit(p.RunFinished(run_id + "x", p.FINISHED, {"val": {"loss": 0.4}, "steps": 300}))
        await until(pilot, lambda: "sanity check failed" in "\n".join(fake_app.log_pane.lines_written),
                    what="failed verdict")


async def test_at_120_columns_a_starting_run_gives_the_charts_the_width(fake_app):
    """Issue 14 item 9: at 120x40 the charts had ~25 columns each beside the setup."""
    async with fake_app.run_test(size=(120, 40)) as pilot:
        await until(pilot, lambda: fake_app.panes_ready and fake_app.bridge.ready, what="ready")
        fake_app.set_focus(None)
        await pilot.press("space")
        await until(pilot, lambda: fake_app.screen.has_class("charts-wide"), what="charts full width")
        assert not fake_app.query_one("#setup").display or fake_app.query_one("#setup").region.width == 0
        assert fake_app.query_one("#loss-chart").region.width > 50
        await pilot.press("v")  # the setup comes back
        await until(pilot, lambda: not fake_app.screen.has_class("charts-wide"), what="setup back")


async def test_at_160_columns_the_setup_stays_beside_the_charts(fake_app):
    async with fake_app.run_test(size=(160, 48)) as pilot:
        await until(pilot, lambda: fake_app.panes_ready and fake_app.bridge.ready, what="ready")
        fake_app.set_focus(None)
        await pilot.press("space")
        await until(pilot, lambda: any(isinstance(c, p.Start) for c in fake_app.fake_host.sent), what="started")
        assert not fake_app.screen.has_class("charts-wide")


async def test_a_resize_under_a_dialog_lays_out_the_main_screen(fake_app):
    """The layout class went on whichever screen was active: a resize while help was open put "narrow" on the
    help dialog, and the main screen kept its wide layout at 80 columns."""
    async with fake_app.run_test(size=(160, 48)) as pilot:
        await until(pilot, lambda: fake_app.panes_ready, what="panes mounted")
        await pilot.press("question_mark")
        await until(pilot, lambda: fake_app.screen is not fake_app.main, what="help open")
        await pilot.resize_terminal(80, 24)
        await until(pilot, lambda: fake_app.main.has_class("narrow"), what="main screen narrow")
        assert not fake_app.screen.has_class("narrow")
        await pilot.press("escape")
        await until(pilot, lambda: fake_app.screen is fake_app.main, what="help closed")
        assert not fake_app.query_one("#charts").display  # the narrow layout: the setup view alone



def test_letting_go_of_an_idle_run_server_does_not_wait_on_its_reader(tmp_path):
    """Issue 26 item 4: q sat ~5 s on a blank screen: detach() closed the connection, which does not wake the
    reader blocked in recv(), then joined it with a 5 s timeout. The reader must be gone when close returns."""
    import os
    import threading
    import time
    from multiprocessing.connection import Listener

    from torchtui.engine import live
    from torchtui.engine.host import ServerHost

    listener = Listener(str(tmp_path / "s.sock"), family="AF_UNIX", authkey=live.authkey())
    accepted = []
    threading.Thread(target=lambda: accepted.append(listener.accept()), daemon=True).start()
    host = ServerHost(live.ServerInfo(pid=os.getpid(), socket=str(tmp_path / "s.sock")))
    try:
        deadline = time.monotonic() + 20
        while (host._conn is None or not accepted) and time.monotonic() < deadline:
            time.sleep(0.02)  # polling for the connection (deadline above)
        assert host._conn is not None and accepted, "never connected"
        EngineBridge(host).close()
        assert not host._reader.is_alive(), "the app's exit waited out the reader's join timeout"
    finally:
        for conn in accepted:
            conn.close()
        listener.close()

