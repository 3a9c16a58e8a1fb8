"""Live fields apply on Enter (or leaving the field), never per keystroke; big changes ask; nothing destructive
happens without asking (restart with a bad field, q and d with unsaved edits, a preset saved from an app
setup that trains until stopped)."""

import dataclasses

import yaml

from torchtui.engine import presets
from torchtui.engine import protocol as p

from .conftest import until
from .fakes import scripted_run

RUN = "20261122-120000-moons"


def sent(app, kind) -> list:
    return [c for c in app.fake_host.sent if isinstance(c, kind)]


def title(app) -> str:
    found = app.screen.query("#title")
    return str(found.first().content) if found else ""


async def running(app, pilot) -> None:
    await until(pilot, lambda: app.panes_ready, what="panes mounted")
    app.fake_host.emit(*scripted_run()[:3])
    await until(pilot, lambda: app.history.state == p.RUNNING, what="running")


async def type_into_lr(app, pilot, text: str) -> None:
    app.set_focus(None)
    await pilot.press("3")  # the Hparams pane
    field = app.query_one("#train-lr")
    field.focus()
    await pilot.pause()
    await pilot.press("ctrl+a", "ctrl+k")  # clear it, as a person would
    for key in text:
        await pilot.press({"-": "minus", ".": "full_stop"}.get(key, key))
        await pilot.pause(0.25)  # slower than the revalidation: each partial value had reached the run


async def test_a_typed_lr_waits_for_enter_and_only_the_whole_value_is_sent(fake_app):
    """Clearing lr and typing 5e-3 at a key a second sent lr 5, then 0.005 (the loss reached 448k)."""
    app = fake_app
    async with app.run_test(size=(120, 40)) as pilot:
        await running(app, pilot)
        before = app.config.train.lr
        await type_into_lr(app, pilot, "5e-3")
        await until(pilot, lambda: "lr 0.005" in app.main.pending, what="pending shown")
        assert not sent(app, p.SetHparams)  # nothing reaches the run while typing
        assert app.query_one("#train-lr").value == "5e-3"
        assert app.query_one("#train-lr-field").has_class("-pending")
        assert "Enter applies" in str(app.main.status_bar.content)
        assert app.config.train.lr == before  # the setup keeps the run's own until it is applied
        await pilot.press("enter")
        await until(pilot, lambda: sent(app, p.SetHparams), what="sent on Enter")
        assert sent(app, p.SetHparams) == [p.SetHparams(lr=0.005)]  # the base lr, once
        assert not app.query_one("#train-lr-field").has_class("-pending")
        # The engine's answer sets the setup's train.lr to the new base (never a schedule's current lr).
        app.fake_host.emit(p.HparamsChanged(RUN, 130, {"lr": [0.0015, 0.0025], "base_lr": [before, 0.005]}))
        await until(pilot, lambda: app.config.train.lr == 0.005, what="setup follows the base")


async def test_leaving_the_field_applies_and_escape_reverts(fake_app):
    app = fake_app
    async with app.run_test(size=(120, 40)) as pilot:
        await running(app, pilot)
        await type_into_lr(app, pilot, "0.002")
        await pilot.press("tab")  # focus leaves the field: applied as Enter would
        await until(pilot, lambda: sent(app, p.SetHparams), what="sent on leaving")
        assert sent(app, p.SetHparams) == [p.SetHparams(lr=0.002)]
        before = app.config.train.lr
        app.fake_host.emit(p.HparamsChanged(RUN, 130, {"lr": [before, 0.002], "base_lr": [before, 0.002]}))
        await until(pilot, lambda: app.config.train.lr == 0.002, what="applied")
        await type_into_lr(app, pilot, "0.001")
        await until(pilot, lambda: app.main.pending, what="pending")
        await pilot.press("escape")
        await until(pilot, lambda: not app.main.pending, what="reverted")
        assert app.query_one("#train-lr").value == str(app.config.train.lr)
        assert len(sent(app, p.SetHparams)) == 1


async def test_a_change_over_ten_times_asks_first(fake_app):
    app = fake_app
    async with app.run_test(size=(120, 40)) as pilot:
        await running(app, pilot)
        await type_into_lr(app, pilot, "5")
        await pilot.press("enter")
        await until(pilot, lambda: title(app) == "A big live change", what="asked")
        assert not sent(app, p.SetHparams)
        await pilot.press("n")  # revert
        await until(pilot, lambda: not app.main.pending, what="reverted")
        assert not sent(app, p.SetHparams)
        await type_into_lr(app, pilot, "5")
        await pilot.press("enter")
        await until(pilot, lambda: title(app) == "A big live change", what="asked again")
        await pilot.press("y")
        await until(pilot, lambda: sent(app, p.SetHparams), what="applied")
        assert sent(app, p.SetHparams) == [p.SetHparams(lr=5.0)]


async def test_an_invalid_value_is_not_sent(fake_app):
    app = fake_app
    async with app.run_test(size=(120, 40)) as pilot:
        await running(app, pilot)
        await type_into_lr(app, pilot, "-1")
        await pilot.press("enter")
        await until(pilot, lambda: "train.lr" in app.problem, what="problem shown")
        await pilot.pause(0.3)
        assert not sent(app, p.SetHparams)


async def test_restart_with_a_bad_field_does_not_stop_the_run(fake_app):
    app = fake_app
    async with app.run_test(size=(120, 40)) as pilot:
        await running(app, pilot)
        await pilot.press("3")
        app.query_one("#train-batch_size").focus()
        await pilot.press("ctrl+a", "ctrl+k", "x", "y", "z")
        await until(pilot, lambda: "batch_size" in app.problem, what="problem")
        app.set_focus(None)
        await pilot.press("r")
        await pilot.pause(0.2)
        assert not sent(app, p.Stop) and title(app) != "Restart the run?"


async def test_q_and_d_with_unsaved_edits_ask():
    from torchtui.tui.app import TorchTUI
    from torchtui.tui.bridge import EngineBridge

    from .conftest import settles
    from .fakes import DetachableFakeHost

    app = settles(TorchTUI(presets.load("moons"), EngineBridge(DetachableFakeHost())))
    async with app.run_test(size=(120, 40)) as pilot:
        await until(pilot, lambda: app.panes_ready, what="panes mounted")
        await pilot.press("3")
        app.query_one("#train-lr").focus()
        await pilot.press("ctrl+a", "ctrl+k", "0", "full_stop", "0", "5")
        await until(pilot, lambda: app.config.train.lr == 0.05, what="edited")
        app.set_focus(None)
        for key in ("q", "d"):
            await pilot.press(key)
            await until(pilot, lambda: title(app) == "Unsaved edits", what=f"{key} asked")
            assert "train.lr" in str(app.screen.query_one("#message").content)
            await pilot.press("n")
            await until(pilot, lambda: title(app) == "", what="cancelled")
            assert app.is_running
        await pilot.press("q")
        await until(pilot, lambda: title(app) == "Unsaved edits", what="asked")
        await pilot.press("y")
        await until(pilot, lambda: not app.is_running, what="quit")


async def test_q_without_edits_quits_at_once(fake_app):
    app = fake_app
    async with app.run_test(size=(120, 40)) as pilot:
        await until(pilot, lambda: app.panes_ready, what="panes mounted")
        await pilot.press("q")
        await until(pilot, lambda: not app.is_running, what="quit")


async def test_saving_a_setup_that_trains_until_stopped_asks_for_a_length(fake_app, tmp_path, monkeypatch):
    """The app opens toy presets with epochs 0 (until stopped): saved as it was, the preset never ended."""
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    app = fake_app
    app.setup.preset_ref = "moons"
    app.config = dataclasses.replace(app.config, train=dataclasses.replace(app.config.train, epochs=0))
    async with app.run_test(size=(120, 40)) as pilot:
        await until(pilot, lambda: app.panes_ready, what="panes mounted")
        await pilot.press("ctrl+s")
        await until(pilot, lambda: app.screen.query("#epochs"), what="length asked")
        assert app.screen.query_one("#epochs").value == str(presets.load("moons").train.epochs)
        name = app.screen.query_one("#name")
        name.value = "my-moons"
        await pilot.press("enter")
        await until(pilot, lambda: (presets.user_dir() / "my-moons.yaml").is_file(), what="saved")
    saved = yaml.safe_load((presets.user_dir() / "my-moons.yaml").read_text())
    assert saved["train"]["epochs"] == 30
