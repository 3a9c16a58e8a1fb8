"""The Runs screen: the list, selection → overlay, the field diff, use/continue, delete/archive, snapshots.

The run folders are written here with fixed ids and metrics (as the engine writes them: RunFolder), so the
snapshots never change with the clock or the machine.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
import time

import pytest

from torchtui.engine import presets
from torchtui.engine import protocol as p
from torchtui.engine.history.series import ema
from torchtui.engine.runs import RunFolder
from torchtui.tui.app import TorchTUI
from torchtui.tui.bridge import EngineBridge
from torchtui.tui.screens.runs import RunsScreen
from torchtui.tui.state.compare import ema_array

from .conftest import settles, until
from .fakes import FakeHost

RUNS = (("20261201-100000-moons", 0.003, 64, 0.95), ("20261201-110000-moons", 0.03, 64, 0.9),
        ("20261201-120000-moons", 0.003, 32, 0.97))


def make_run(root, run_id: str, lr: float, units: int, top: float, steps: int = 120, per_epoch: int = 20,
             state: str = "finished") -> RunFolder:
    """A run folder as the engine leaves it: config, origin, metrics (+ curve.f64), checkpoints, summary."""
    config = presets.load("moons")
    layers = [dataclasses.replace(config.model.layers[0], units=units)] + list(config.model.layers[1:])
    config = dataclasses.replace(config, train=dataclasses.replace(config.train, lr=lr),
                                 model=dataclasses.replace(config.model, layers=layers))
    folder = RunFolder(root / run_id)
    (folder.path / "checkpoints").mkdir(parents=True)
    folder.write_config(config.to_dict())
    created = 1796000000.0 + int(run_id[9:11]) * 3600  # the hour in the run id
    folder.write_origin({"created": created, "preset": "moons"})
    rows, curve = [], []
    for step in range(1, steps + 1):
        loss = 0.7 * math.exp(-step * lr * 10) + 0.05 + 0.02 * ((step * 7919) % 13) / 13
        rows.append({"type": "step", "step": step, "epoch": step / per_epoch, "loss": loss, "lr": lr})
        curve += [step, step / per_epoch, loss]
        if step % per_epoch == 0:
            epoch = step // per_epoch
            acc = top - 0.3 / epoch
            rows.append({"type": "eval", "split": "val", "step": step, "epoch": epoch, "accuracy": acc,
                         "f1": acc - 0.01, "loss": 0.5 / epoch})
        if step == 60:
            rows.append({"type": "hparams", "step": 60, "lr": lr * 2})
    folder.append_metrics(rows, curve)
    (folder.path / "checkpoints" / "best.pt").write_bytes(b"weights")
    (folder.path / "checkpoints" / "last.pt").write_bytes(b"weights")
    folder.write_summary({"state": state, "run_id": run_id, "epochs": steps // per_epoch, "steps": steps,
                          "seconds": 12.5, "task": "binary", "val": {"accuracy": top - 0.05},
                          "test": {"accuracy": top - 0.06}})
    return folder


@pytest.fixture
def runs_root(tmp_path):
    root = tmp_path / "runs"
    for run_id, lr, units, top in RUNS:
        make_run(root, run_id, lr, units, top)
    return root


@pytest.fixture
def runs_app(runs_root):
    host = FakeHost()
    app = settles(TorchTUI(presets.load("moons"), EngineBridge(host), runs_dir=str(runs_root)))
    app.fake_host = host
    return app


async def open_runs(app, pilot, rows: int = 3) -> RunsScreen:
    await until(pilot, lambda: app.panes_ready, what="panes mounted")
    await pilot.press("b")
    await until(pilot, lambda: isinstance(app.screen, RunsScreen) and app.screen.table.row_count == rows,
                what="the Runs screen")
    return app.screen


async def select_first_two(pilot, screen) -> None:
    await pilot.press("space", "down", "space")
    await until(pilot, lambda: len(screen.selected) == 2, what="two runs selected")


async def test_runs_screen_lists_overlays_and_diffs(runs_app, runs_root):
    async with runs_app.run_test(size=(120, 40)) as pilot:
        screen = await open_runs(runs_app, pilot)
        assert [screen.table.get_row_at(i)[1] for i in range(3)] == [r[0] for r in RUNS]
        columns = [str(c.label) for c in screen.table.columns.values()]
        assert "train.lr" in columns and "model.layers[0].units" in columns and "accuracy best/final" in columns
        await select_first_two(pilot, screen)
        loss, metric = screen.charts
        await until(pilot, lambda: not loss.dirty and not metric.dirty, what="overlay drawn")
        assert [r.run_id for r in loss.runs] == [RUNS[0][0], RUNS[1][0]]
        assert metric.what == "accuracy" and all(len(r.evals["accuracy"]) == 6 for r in metric.runs)
        assert all(r.changes == [(60.0, "lr " + f"{lr * 2:g}")] for r, (_, lr, _, _) in zip(loss.runs, RUNS))
        assert loss.points_plotted > 0 and metric.points_plotted > 0
        assert "2 runs · 2 live changes" in str(loss.render())
        await pilot.press("a")  # per epoch
        await until(pilot, lambda: loss.axis == "epoch" and loss.runs[0].loss.last[0] == 6.0, what="epoch axis")
        await pilot.press("m")
        assert metric.what == "f1"
        await pilot.press("v")
        await pilot.pause()
        fields = [screen.diff.get_row_at(i)[0].plain for i in range(screen.diff.row_count)]
        assert "train.lr" in fields and "model.layers[0].units" not in fields  # the two share 64 units
        lr_row = screen.diff.get_row("train.lr")
        assert lr_row[1:] == ["0.003", "0.03"]


async def test_sort_and_filter(runs_app):
    async with runs_app.run_test(size=(120, 40)) as pilot:
        screen = await open_runs(runs_app, pilot)
        await pilot.press("s")  # created → best metric: accuracy high first
        await until(pilot, lambda: screen.sort_key == "best metric", what="sorted")
        assert [r.run_id for r in screen.records] == [RUNS[2][0], RUNS[0][0], RUNS[1][0]]
        await pilot.press("slash", *"units=32")
        await until(pilot, lambda: screen.table.row_count == 1, what="filtered")
        assert screen.records[0].run_id == RUNS[2][0]
        await pilot.press("escape")  # out of the filter, still on the screen
        assert isinstance(runs_app.screen, RunsScreen)
        await pilot.press("escape")
        await until(pilot, lambda: not isinstance(runs_app.screen, RunsScreen), what="back to the app")


async def test_use_this_setup_loads_the_run_into_the_panes(runs_app):
    async with runs_app.run_test(size=(120, 40)) as pilot:
        screen = await open_runs(runs_app, pilot)
        await pilot.press("down", "u")
        await until(pilot, lambda: not isinstance(runs_app.screen, RunsScreen), what="back to the app")
        assert screen.records  # the screen listed them
        assert runs_app.config.train.lr == 0.03
        await until(pilot, lambda: runs_app.pane("hparams").query_one("#train-lr").value == "0.03",
                    what="Hparams pane shows the run's lr")
        assert runs_app.setup.preset_ref == "moons"


async def test_continue_from_a_run_starts_a_branch_from_its_checkpoint(runs_app, runs_root):
    async with runs_app.run_test(size=(120, 40)) as pilot:
        await open_runs(runs_app, pilot)
        await pilot.press("down", "down", "c")
        await pilot.press("l")  # last.pt, not best.pt
        await until(pilot, lambda: any(isinstance(c, p.Start) for c in runs_app.fake_host.sent), what="Start")
        start = next(c for c in runs_app.fake_host.sent if isinstance(c, p.Start))
        assert start.config["model"]["pretrained"] == str(runs_root / RUNS[2][0] / "checkpoints" / "last.pt")
        assert start.config["model"]["layers"][0]["units"] == 32
        assert start.origin == {"preset": "moons"}


async def test_delete_and_archive_ask_first(runs_app, runs_root):
    async with runs_app.run_test(size=(120, 40)) as pilot:
        screen = await open_runs(runs_app, pilot)
        await pilot.press("D")
        await pilot.press("n")  # cancel: nothing removed
        await pilot.pause()
        assert (runs_root / RUNS[0][0]).is_dir()
        await pilot.press("D")
        await pilot.press("a")
        await until(pilot, lambda: screen.table.row_count == 2, what="archived")
        assert (runs_root / "archive" / RUNS[0][0] / "config.yaml").is_file()
        await pilot.press("D")
        await pilot.press("y")
        await until(pilot, lambda: screen.table.row_count == 1, what="deleted")
        assert not (runs_root / RUNS[1][0]).exists()


async def test_a_finishing_run_updates_the_list(runs_app, runs_root):
    async with runs_app.run_test(size=(120, 40)) as pilot:
        screen = await open_runs(runs_app, pilot)
        folder = make_run(runs_root, "20261201-130000-moons", 0.01, 16, 0.99, state="finished")
        screen.refresh_runs()
        await until(pilot, lambda: screen.table.row_count == 4, what="the new run listed")
        summary = json.loads(folder.summary_path.read_text())
        folder.write_summary({**summary, "state": "stopped"})
        screen.refresh_runs()
        await until(pilot, lambda: screen.table.get_row(str(folder.path))[2] == "stopped", what="its new state")


def test_ema_array_equals_the_charts_ema():
    values = [math.nan, 1.0, 0.5, math.inf, 0.25] + [0.1 * (i % 7) for i in range(300)]
    assert ema_array(values, 0.05).tolist()[1:] == pytest.approx(ema(values, 0.05)[1:], abs=1e-12)
    assert math.isnan(ema_array(values, 0.05)[0])


def snapshot_app(runs_root, monkeypatch):
    monkeypatch.chdir(runs_root.parent)  # the screen shows the folder as given: the same in every run
    return TorchTUI(presets.load("moons"), EngineBridge(FakeHost()), runs_dir="runs")


def open_and_select(app):
    async def run_before(pilot):
        screen = await open_runs(app, pilot)
        await select_first_two(pilot, screen)
        await until(pilot, lambda: all(c.size.width and not c.dirty for c in screen.charts), what="overlay drawn")
        await pilot.pause()
    return run_before


def test_runs_screen_80x24(snap_compare, runs_root, monkeypatch):
    app = snapshot_app(runs_root, monkeypatch)
    assert snap_compare(app, terminal_size=(80, 24), run_before=open_and_select(app))


def test_runs_screen_160x48(snap_compare, runs_root, monkeypatch):
    app = snapshot_app(runs_root, monkeypatch)
    assert snap_compare(app, terminal_size=(160, 48), run_before=open_and_select(app))


async def test_S_runs_the_opened_sweep_in_the_background_and_shows_its_leaderboard(tmp_path):
    import yaml

    preset = tmp_path / "mini-sweep.yaml"
    setup = presets.load("moons", ["data.n_samples=200", "train.epochs=2", "device.device=cpu"]).to_dict()
    setup["name"] = "mini"
    preset.write_text(yaml.safe_dump({**setup, "sweep": {"method": "grid", "metric": "accuracy",
                                                         "params": {"train.lr": [0.01, 0.001]}}}))
    host = FakeHost()
    app = settles(TorchTUI(presets.load("moons"), EngineBridge(host), runs_dir=str(tmp_path / "runs")))
    async with app.run_test(size=(120, 40)) as pilot:
        await until(pilot, lambda: app.panes_ready, what="panes mounted")
        assert app.presets.open(str(preset)) and app.setup.sweep_section is not None
        await pilot.press("S")
        await until(pilot, lambda: isinstance(app.screen, RunsScreen), what="the sweep's leaderboard")
        screen = app.screen
        assert screen.sort_key == "accuracy" and "sweep mini" in screen.title_text
        await until(pilot, lambda: len(screen.records) == 2 and all(r.state == "finished" for r in screen.records),
                    timeout=120, what="both trials listed as finished")
        assert sorted(r.trial for r in screen.records) == [0, 1]
        accuracies = [r.best["accuracy"] for r in screen.records]
        assert accuracies == sorted(accuracies, reverse=True)  # the leaderboard: best first
        best_lr = screen.records[0].config["train"]["lr"]
        assert screen.current is screen.records[0]  # the cursor stayed on the top row as trials came in
        await pilot.press("u")  # use the best setup
        await until(pilot, lambda: not isinstance(app.screen, RunsScreen), what="back to the app")
        assert app.config.train.lr == best_lr
    best = tmp_path / "runs" / "sweep-mini" / "best.yaml"
    deadline = time.monotonic() + 60
    while not best.exists():  # the sweep process writes its answer as it ends; then it exits
        assert time.monotonic() < deadline, "the background sweep did not finish"
        time.sleep(0.2)
    assert presets.load(str(best)).train.lr == best_lr


async def test_S_says_when_the_sweep_folder_holds_another_sweep(tmp_path):
    import yaml

    folder = tmp_path / "runs" / "sweep-moons"
    folder.mkdir(parents=True)
    (folder / "sweep.yaml").write_text(yaml.safe_dump({"name": "moons", "sweep": {"method": "grid"}, "config": {}}))
    host = FakeHost()
    app = settles(TorchTUI(presets.load("moons"), EngineBridge(host), runs_dir=str(tmp_path / "runs")))
    app.setup.sweep_section = {"method": "grid", "params": {"train.lr": [0.1, 0.01]}}
    async with app.run_test(size=(120, 40)) as pilot:
        await until(pilot, lambda: app.panes_ready, what="panes mounted")
        await pilot.press("S")
        await until(pilot, lambda: "holds a different sweep" in "\n".join(app.log_pane.lines_written),
                    what="the refusal in the log")
        assert not isinstance(app.screen, RunsScreen)
        assert not (folder / "preset.yaml").exists()  # nothing started


def make_sweep(root, name: str, done: int, trials: int):
    """A sweep folder as `torchtui sweep` leaves it: sweep.yaml, and `done` finished trials (run folders with
    origin.json and trial.json) of `trials`. Returns the folder and the preset's sweep: section."""
    import yaml

    from torchtui.engine import sweep
    from torchtui.engine.sweep.study import Sweep

    section = {"method": "random", "metric": "accuracy", "trials": trials, "params": {"train.lr": [0.003, 0.03]}}
    base = dataclasses.replace(presets.load("moons"), name=name).to_dict()
    folder = root / f"sweep-{name}"
    Sweep(sweep.parse(section, base), base, folder, name).claim_folder()  # its sweep.yaml, as the engine writes it
    for n in range(done):
        run = make_run(folder, f"20261201-1{n}0000-{name}-t{n:03d}", 0.003 * 10 ** (n % 2), 64, 0.9 + n / 100)
        run.write_origin({"created": 1796000000.0 + n, "preset": "", "sweep": name, "trial": n})
        run.write_config({**yaml.safe_load((run.path / "config.yaml").read_text()), "name": f"{name}-t{n:03d}"})
        (run.path / "trial.json").write_text(json.dumps({"sweep": name, "number": n, "state": "complete",
                                                         "params": {"train.lr": 0.003}, "metric": "accuracy"}))
    return folder, section


def sweep_app(tmp_path, monkeypatch, section=None, name="moons"):
    """The app on runs_dir tmp_path/runs, with `start_sweep` recorded instead of run (a list of its calls)."""
    import types

    from torchtui.tui.controllers import runs as runs_controller

    started = []

    def start_sweep(*args, **kwargs):
        started.append((args, kwargs))
        return types.SimpleNamespace(pid=4343, wait=lambda: 0)  # a sweep process that ends at once

    monkeypatch.setattr(runs_controller, "start_sweep", start_sweep)
    app = settles(TorchTUI(dataclasses.replace(presets.load("moons"), name=name), EngineBridge(FakeHost()),
                           runs_dir=str(tmp_path / "runs")))
    app.setup.sweep_section = section
    return app, started


def logged(app) -> str:
    return "\n".join(app.log_pane.lines_written)


async def test_S_on_a_finished_sweep_says_so_and_starts_nothing(tmp_path, monkeypatch):
    """Issue 26 item 7: S on a finished study said nothing (the sweep process found nothing to do and exited,
    left a zombie)."""
    folder, section = make_sweep(tmp_path / "runs", "mini", done=2, trials=2)
    app, started = sweep_app(tmp_path, monkeypatch, section, name="mini")
    async with app.run_test(size=(120, 40)) as pilot:
        await until(pilot, lambda: app.panes_ready, what="panes mounted")
        await pilot.press("S")
        await until(pilot, lambda: "is finished" in logged(app), timeout=10, what="said finished")
        assert "2 of 2 trials" in logged(app) and "sweep.trials" in logged(app)
        assert not started
        await until(pilot, lambda: isinstance(app.screen, RunsScreen), what="its leaderboard")


async def test_u_on_a_sweep_trial_then_S_continues_that_sweep(tmp_path, monkeypatch):
    """Issue 26 item 7: S after `u` on trial t001 started a new sweep named after the trial (sweep-mini-t001)."""
    folder, _ = make_sweep(tmp_path / "runs", "mini", done=2, trials=4)
    app, started = sweep_app(tmp_path, monkeypatch, section=None)
    async with app.run_test(size=(120, 40)) as pilot:
        await until(pilot, lambda: app.panes_ready, what="panes mounted")
        await pilot.press("b")
        await until(pilot, lambda: isinstance(app.screen, RunsScreen) and app.screen.table.row_count == 2,
                    what="the trials listed")
        await pilot.press("down", "u")
        await until(pilot, lambda: not isinstance(app.screen, RunsScreen), what="back to the app")
        assert app.config.name == "mini-t001"
        assert "S continues sweep mini" in logged(app)
        await pilot.press("S")
        await until(pilot, lambda: started, timeout=10, what="the sweep started")
        (where, preset, runs_dir), kwargs = started[0]
        assert where == folder and runs_dir == str(folder.parent) and kwargs["name"] == "mini"
        assert preset["name"] == "mini" and preset["sweep"]["trials"] == 4
        assert "continuing sweep mini" in logged(app)


async def test_a_sweep_process_that_ends_is_reaped_and_said(tmp_path, monkeypatch):
    """Issue 26 item 7: the app never waited on the sweep process it started: one that ended stayed <defunct>."""
    import os
    import sys

    fake = tmp_path / "fake-python"  # stands in for `python -m torchtui.cli sweep …`: it fails at once
    fake.write_text("#!/bin/sh\necho 'sweep: the storage is locked'\nexit 3\n")
    fake.chmod(0o755)
    monkeypatch.setattr(sys, "executable", str(fake))
    app = settles(TorchTUI(presets.load("moons"), EngineBridge(FakeHost()), runs_dir=str(tmp_path / "runs")))
    app.setup.sweep_section = {"method": "grid", "metric": "accuracy", "params": {"train.lr": [0.1, 0.01]}}
    async with app.run_test(size=(120, 40)) as pilot:
        await until(pilot, lambda: app.panes_ready, what="panes mounted")
        await pilot.press("S")
        await until(pilot, lambda: "exit code 3" in logged(app), timeout=20, what="the sweep's end said")
        assert "the storage is locked" in logged(app)
        pid = int(re.search(r"pid (\d+)", logged(app)).group(1))
        with pytest.raises(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)  # reaped already: no <defunct> left behind


async def test_u_while_a_run_is_active_offers_the_setup_for_the_next_start(runs_app):
    """Issue 26 item 8: u was refused while a run was active, where ctrl+o offers to open for the next start."""
    from .fakes import scripted_run

    async with runs_app.run_test(size=(120, 40)) as pilot:
        runs_app.fake_host.emit(*scripted_run()[:3])
        await until(pilot, lambda: runs_app.history.state == p.RUNNING, what="running")
        await open_runs(runs_app, pilot)
        await pilot.press("down", "u")
        await until(pilot, lambda: runs_app.screen.query("#title")
                    and "A run is active" in str(runs_app.screen.query_one("#title").content), timeout=10,
                    what="the question")
        await pilot.press("o")
        await until(pilot, lambda: runs_app.config.train.lr == 0.03, timeout=10, what="the run's setup loaded")
        assert not [c for c in runs_app.fake_host.sent if isinstance(c, p.Stop)]  # the active run goes on
        assert "keeps its own setup" in runs_app.main.notice


async def test_the_overlay_legend_keeps_the_end_that_tells_sweep_trials_apart(tmp_path):
    """Issue 26 item 8: two trials' legend entries were both cut to `…moons-sweep-t0…`."""
    from torchtui.tui.state.compare import label

    folder, _ = make_sweep(tmp_path / "runs", "moons-sweep", done=2, trials=4)
    records = catalog_records(folder.parent)
    labels = [label(r) for r in records]
    assert labels[0] != labels[1] and labels[0].endswith("t000") and labels[1].endswith("t001"), labels
    assert all(len(text) <= 22 for text in labels)
    app = settles(TorchTUI(presets.load("moons"), EngineBridge(FakeHost()), runs_dir=str(tmp_path / "runs")))
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await open_runs(app, pilot, rows=2)
        await select_first_two(pilot, screen)
        loss = screen.charts[0]
        await until(pilot, lambda: loss.size.width and not loss.dirty, what="overlay drawn")
        drawn = str(loss.render())
        assert "sweep-t000" in drawn and "sweep-t001" in drawn, drawn


def catalog_records(root):
    from torchtui.engine.catalog import Catalog

    return Catalog(root).scan()
