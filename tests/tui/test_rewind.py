"""Rewind from the keyboard and the spike guard's question (issue 27), on a scripted engine: `w` lists the run's
snapshots newest first, marks the one under the cursor on the loss chart, sends Rewind with the lr change asked
for, and after the branch the charts show the parent's curve up to the branch point, then the branch's; a guard
that trips with `ask` pauses the run and each of its keys sends its answer."""

from __future__ import annotations

import dataclasses

from torchtui.engine import protocol as p
from torchtui.engine.history import RunHistory
from torchtui.tui.screens.guard import GuardScreen
from torchtui.tui.screens.rewind import RewindScreen

from .conftest import until
from .fakes import scripted_run

RUN, BRANCH = "20261122-120000-moons", "20261122-120500-moons"


def sent(app, kind) -> list:
    return [c for c in app.fake_host.sent if isinstance(c, kind)]


def listed(request_id: int) -> p.SnapshotsListed:
    """Three snapshots, oldest first as the engine lists them."""
    return p.SnapshotsListed(request_id, RUN, [
        {"step": step, "epoch": step / 50, "time": 1796000000.0 + step, "loss": 0.7 - step / 1000,
         "val": {"loss": 0.5, "accuracy": 0.8 + step / 10_000} if step >= 50 else {}, "run_id": RUN, "bytes": 40_000}
        for step in (25, 50, 100)])


async def running(app, pilot, steps: int = 8) -> None:
    """The scripted run's first `steps` events: started, running, stats up to step 100."""
    await until(pilot, lambda: app.panes_ready and "loss-chart" in app.charts, what="panes and charts")
    app.fake_host.emit(*scripted_run()[:steps])
    await until(pilot, lambda: app.history.state == p.RUNNING and len(app.history.train_loss) >= 100,
                what="running")


async def open_rewind(app, pilot) -> RewindScreen:
    await pilot.press("w")
    await until(pilot, lambda: isinstance(app.screen, RewindScreen) and sent(app, p.ListSnapshots),
                what="the rewind list asked for")
    screen = app.screen
    app.fake_host.emit(listed(sent(app, p.ListSnapshots)[-1].request_id))
    await until(pilot, lambda: screen.table.row_count == 3, what="the snapshots listed")
    return screen


async def test_w_rewinds_to_a_picked_snapshot_with_lr_halved_and_the_app_follows_the_branch(fake_app):
    app = fake_app
    async with app.run_test(size=(160, 48)) as pilot:
        await running(app, pilot)
        screen = await open_rewind(app, pilot)
        assert [screen.table.get_row_at(i)[0].plain for i in range(3)] == ["100", "50", "25"]  # newest first
        assert "val accuracy" in [str(c.label) for c in screen.table.columns.values()]
        chart = app.charts["loss-chart"]
        await until(pilot, lambda: chart.chosen_step == 100, what="the newest marked on the loss chart")
        assert chart.snapshot_steps == [25, 50, 100]
        await pilot.press("down")
        await until(pilot, lambda: chart.chosen_step == 50, what="the mark follows the cursor")
        await until(pilot, lambda: "↶ 50" in chart.render().plain, what="the mark drawn")
        await pilot.press("minus")
        assert "lr ÷2" in str(screen.query_one("#rewind-change").content)
        await pilot.press("enter")
        await until(pilot, lambda: sent(app, p.Rewind), what="Rewind sent")
        (rewind,) = sent(app, p.Rewind)
        assert (rewind.step, rewind.changes, rewind.run_id) == (50, {"lr_scale": 0.5}, RUN)
        assert chart.chosen_step is None and not isinstance(app.screen, RewindScreen)

        # The engine's answer: the parent stops, the branch starts at step 50 and trains on.
        started = scripted_run()[0]
        branch = dataclasses.replace(started, run_id=BRANCH, run_dir=f"runs/{BRANCH}", start_step=50)
        steps = list(range(51, 81))
        app.fake_host.emit(
            p.RunFinished(RUN, p.STOPPED, {"reason": "rewound to step 50"}),
            p.Branched(RUN, RUN, f"runs/{RUN}", BRANCH, f"runs/{BRANCH}", 50, {"lr_scale": 0.5}),
            branch, p.HparamsChanged(BRANCH, 50, {"lr": [0.003, 0.0015], "base_lr": [0.003, 0.0015]}),
            p.StateChanged(BRANCH, p.RUNNING),
            p.StepStats(run_id=BRANCH, step=steps, epoch=1.6, loss=[0.2] * 30, lr=[0.0015] * 30, acc_steps=[],
                        acc=[], layer_steps=[], grad_norm=[], layer_grad_norm=[], update_ratio=[],
                        samples_per_s=1.0, eta_s=1.0, progress=0.5))
        await until(pilot, lambda: app.history.run_id == BRANCH and len(app.history.train_loss) == 80,
                    what="the branch's steps after the parent's")
        xs, ys = app.history.train_loss.downsample(1000)
        assert xs == list(range(1, 81)) and ys[-1] == 0.2  # the parent's 1..50, then the branch's 51..80
        assert [m for m in app.history.markers if m[0] == 50] == [(50, "rewind lr /2")]  # one label, not two
        assert chart.snapshot_steps == [25, 50]  # the parent's snapshots the branch keeps (up to its branch point)
        assert app.history.state == p.RUNNING and app.main.state == p.RUNNING
        # A run server's History of the branch (engine/history: the parent's curve first, its lr change as a marker)
        # replaces the app's: the curve is kept as it came, the branch point keeps its one rewind marker.
        served = RunHistory.from_plain(app.history.to_plain())
        served.markers = [(50, "lr /2")]
        app.fake_host.emit(p.History(BRANCH, served.to_plain()))
        await until(pilot, lambda: app.history.markers == [(50, "rewind lr /2")], what="the served History's marker")
        assert app.history.train_loss.downsample(1000)[0] == list(range(1, 81))
        log = "\n".join(app.log_pane.lines_written)
        assert f"branched {BRANCH} from {RUN} at step 50 (lr ÷2)" in log and "the branch's first step came" in log


async def test_a_typed_lr_is_checked_and_sent_whole(fake_app):
    app = fake_app
    async with app.run_test(size=(120, 40)) as pilot:
        await until(pilot, lambda: app.panes_ready, what="panes")
        await pilot.press("w")  # no run yet: it says what it does, and asks the engine nothing
        await pilot.pause()
        assert not isinstance(app.screen, RewindScreen) and not sent(app, p.ListSnapshots)
        await running(app, pilot)
        # The list came before the screen was mounted (a quick engine): it shows once it is (it stayed empty).
        screen = app.rewinder.screen = RewindScreen(RUN, 0.003, app.rewinder.check_lr)
        screen.show(listed(1))
        app.push_screen(screen, app.rewinder.rewind)
        await until(pilot, lambda: app.screen is screen and hasattr(screen, "table") and screen.table.row_count == 3,
                    what="the early list shown")
        await pilot.press("l", *"-1", "enter")
        await pilot.pause()
        assert screen.typed is None and isinstance(app.screen, RewindScreen)  # refused: lr must be positive
        await pilot.press("ctrl+a", "ctrl+k", *"2e-3", "enter")
        await until(pilot, lambda: screen.typed == 0.002, what="the typed lr taken")
        await pilot.press("plus", "enter")
        await until(pilot, lambda: sent(app, p.Rewind), what="Rewind sent")
        assert sent(app, p.Rewind)[0].changes == {"lr": 0.004} and sent(app, p.Rewind)[0].step == 100


def tripped(step: int, snapshot: int | None = 100) -> p.GuardTripped:
    return p.GuardTripped(RUN, step, "loss_spike", f"loss 4.1e+06 at step {step} is 9.3e+05 MADs above the median",
                          "ask", 4.1e6, batches=[[2, 7]], samples=list(range(32)),
                          worst=[[1234, 3.9e7], [17, 2.2e6]], snapshot_step=snapshot)


async def guard_asks(app, pilot, step: int, snapshot: int | None = 100) -> GuardScreen:
    app.fake_host.emit(tripped(step, snapshot), p.StateChanged(RUN, p.PAUSED, "guard: loss spike"))
    await until(pilot, lambda: isinstance(app.screen, GuardScreen) and app.history.state == p.PAUSED,
                what="the guard's question, the run paused")
    return app.screen


async def test_the_guard_pauses_the_run_and_each_key_sends_its_answer(fake_app):
    app = fake_app
    async with app.run_test(size=(120, 40)) as pilot:
        await running(app, pilot)
        screen = await guard_asks(app, pilot, 120)
        assert "roll back 20 steps (to step 100)" in str(screen.query_one("#guard-choices").content)
        await pilot.press("s")  # the offending batch: its worst samples with their losses
        table = screen.query_one("#guard-batch")
        await until(pilot, lambda: table.row_count == 2 and table.display, what="the batch shown")
        assert table.get_row_at(0) == ["1,234", "3.9e+07"]
        await pilot.press("b")
        await until(pilot, lambda: sent(app, p.GuardAnswer), what="rollback sent")
        for key, action in (("h", "halve_lr"), ("c", "continue")):
            app.fake_host.emit(p.StateChanged(RUN, p.RUNNING))
            await guard_asks(app, pilot, 130)
            await pilot.press(key)
            await until(pilot, lambda action=action: sent(app, p.GuardAnswer)[-1].action == action, what=action)
        assert sent(app, p.GuardAnswer) == [p.GuardAnswer("rollback", RUN), p.GuardAnswer("halve_lr", RUN),
                                            p.GuardAnswer("continue", RUN)]
        # With no snapshot before the bad step b and h cannot act: they say so and send nothing.
        app.fake_host.emit(p.StateChanged(RUN, p.RUNNING))
        await guard_asks(app, pilot, 140, snapshot=None)
        await pilot.press("b")
        await pilot.pause()
        assert len(sent(app, p.GuardAnswer)) == 3 and isinstance(app.screen, GuardScreen)
        app.fake_host.emit(p.StateChanged(RUN, p.RUNNING))  # another client answered: the question goes away
        await until(pilot, lambda: not isinstance(app.screen, GuardScreen), what="the question closed")


async def test_a_real_engine_pauses_on_a_bad_batch_and_h_rolls_back_with_half_the_lr(tmp_path, monkeypatch):
    """The app on an in-process engine, one train batch scaled by 1e6 (as tests/engine/test_guard.py does): the
    guard (auto: ask in the app) pauses the run and asks; s shows that batch's worst samples, h rolls back past it
    with the lr halved, and the run trains on."""
    import torch

    from torchtui.engine import presets
    from torchtui.engine.data.batches import epoch_permutation
    from torchtui.engine.data.splits import Splits
    from torchtui.engine.host import InProcessHost
    from torchtui.tui.app import TorchTUI
    from torchtui.tui.bridge import EngineBridge

    from .conftest import settles

    bad, real = (6, 3), Splits.train_batches  # epoch 6: past the guard's first 20 steps (no spike called before)

    def batches(self, order, batch_size, start_batch=0):
        epoch = bad[0] if torch.equal(order, epoch_permutation(len(order), 0, bad[0], order.device)) else None
        for index, (xb, yb) in enumerate(real(self, order, batch_size, start_batch), start_batch):
            yield (xb * 1e6 if (epoch, index) == bad else xb), yb

    monkeypatch.setattr(Splits, "train_batches", batches)
    host = InProcessHost(str(tmp_path / "runs"))
    config = presets.load("moons", ["data.n_samples=400", "train.batch_size=32", "train.epochs=100000",
                                    "train.snapshot_every=0.000001", "train.lr=0.01"])
    app = settles(TorchTUI(config, EngineBridge(host), runs_dir=str(tmp_path / "runs")))
    try:
        async with app.run_test(size=(120, 40)) as pilot:
            await until(pilot, lambda: app.panes_ready and app.bridge.ready, timeout=120, what="the engine")
            await pilot.press("space")
            await until(pilot, lambda: isinstance(app.screen, GuardScreen), timeout=120, what="the guard's question")
            screen, step = app.screen, app.screen.tripped.step
            await until(pilot, lambda: app.history.state == p.PAUSED, timeout=120, what="the run paused")
            assert screen.tripped.kind in ("loss_spike", "nonfinite") and step > 50
            await pilot.press("s")
            table = screen.query_one("#guard-batch")
            await until(pilot, lambda: table.row_count > 0 and table.display, timeout=120, what="the offending batch")
            assert float(table.get_row_at(0)[1]) > 1e3  # a sample of the scaled batch, by its loss
            await pilot.press("h")
            await until(pilot, lambda: app.history.state == p.RUNNING and any(
                "rolled back" in line and "halving the lr" in line for line in app.log_pane.lines_written),
                timeout=120, what="rolled back, lr halved, running")
            await until(pilot, lambda: app.config.train.lr == 0.005, timeout=120, what="the setup follows the lr")
            # The loss chart marks where the run went back to (engine/history's RolledBack marker).
            assert any(at < step and "↺" in label for at, label in app.history.markers), app.history.markers
            assert not isinstance(app.screen, GuardScreen)
    finally:
        host.close()
