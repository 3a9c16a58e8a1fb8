"""`torchtui sweep`: Optuna's grid, random and TPE samplers over preset fields, pruning, continuing after a
kill -9 without redoing finished trials, parallel trials, and sweep sections that are wrong."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
import yaml

from torchtui.engine import presets, sweep
from torchtui.engine.schema import ConfigError

from .test_cli import CLI, last_json, one_line_error, torchtui

BASE = {"schema": 1, "name": "s", "data": {"source": "moons", "n_samples": 300, "noise": 0.2},
        "model": {"layers": [16, 16]},
        "train": {"loss": "cross_entropy", "lr": 0.01, "batch_size": 32, "epochs": 3, "best_metric": "accuracy"},
        "device": {"device": "cpu"}}


def sweep_file(tmp_path, section: dict, **train) -> str:
    data = json.loads(json.dumps(BASE))
    data["train"].update(train)
    data["sweep"] = section
    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return str(path)


def run_sweep(path: str, *args: str, timeout: float = 300) -> dict:
    done = torchtui("sweep", path, "--runs-dir", str(Path(path).parent / "runs"), "--json", *args, timeout=timeout)
    assert done.returncode == 0, done.stderr[-3000:]
    return last_json(done.stdout)


def val_best(run_dir: str, metric: str = "accuracy") -> float:
    rows = [json.loads(line) for line in (Path(run_dir) / "metrics.jsonl").read_text().splitlines()]
    return max(r[metric] for r in rows if r["type"] == "eval" and r["split"] == "val")


def test_a_grid_over_lr_gives_every_point_ranked(tmp_path):
    out = run_sweep(sweep_file(tmp_path, {"method": "grid", "metric": "accuracy",
                                          "params": {"train.lr": [0.05, 0.005, 0.0005]}}))
    trials = out["trials"]
    assert sorted(t["params"]["train.lr"] for t in trials) == [0.0005, 0.005, 0.05]
    assert all(t["state"] == "complete" for t in trials)
    values = [t["value"] for t in trials]
    assert values == sorted(values, reverse=True)  # accuracy: best first
    for t in trials:  # each value is the best val accuracy its run logged; its own run folder
        assert t["value"] == pytest.approx(val_best(t["run_dir"]))
        config = yaml.safe_load((Path(t["run_dir"]) / "config.yaml").read_text())
        assert config["train"]["lr"] == t["params"]["train.lr"]
    assert len({t["run_dir"] for t in trials}) == 3
    assert out["best"] == trials[0]
    best = presets.load(out["best_preset"])  # the best setup as a preset that trains
    assert best.train.lr == trials[0]["params"]["train.lr"]
    listed = last_json(torchtui("runs", "--runs-dir", str(tmp_path / "runs"), "--json").stdout)["runs"]
    assert sorted(r["trial"] for r in listed) == [0, 1, 2] and {r["sweep"] for r in listed} == {"s"}


def test_random_and_tpe_respect_bounds_and_step(tmp_path):
    params = {"train.lr": {"log_uniform": [1.0e-4, 1.0e-2]}, "model.layers[0].dropout": {"uniform": [0.0, 0.5],
                                                                                       "step": 0.1},
              "model.layers[0].units": {"uniform": [4, 12]}}
    for method in ("random", "tpe"):
        (tmp_path / method).mkdir()
        out = run_sweep(sweep_file(tmp_path / method, {"method": method, "metric": "loss", "trials": 4,
                                                       "params": params}, epochs=1))
        assert len(out["trials"]) == 4 and out["direction"] == "minimize"
        for t in out["trials"]:
            lr, dropout, units = (t["params"][k] for k in params)
            assert 1e-4 <= lr <= 1e-2
            assert dropout in (0.0, 0.1, 0.2, 0.3, 0.4, 0.5) or abs(round(dropout / 0.1) * 0.1 - dropout) < 1e-9
            assert isinstance(units, int) and 4 <= units <= 12
        values = [t["value"] for t in out["trials"]]
        assert values == sorted(values)  # loss: lowest first


def test_a_hopeless_trial_is_pruned_early(tmp_path):
    # seed 5 puts lr 1e-6 last, so the median pruner has finished trials to compare it with
    out = run_sweep(sweep_file(tmp_path, {"method": "grid", "metric": "accuracy", "prune": "median", "seed": 5,
                                          "params": {"train.lr": [0.01, 0.02, 0.005, 1.0e-6]}}, epochs=8))
    hopeless = next(t for t in out["trials"] if t["params"]["train.lr"] == 1e-6)
    assert hopeless["state"] == "pruned"
    summary = json.loads((Path(hopeless["run_dir"]) / "summary.json").read_text())
    assert summary["epochs"] < 8 and summary["state"] == "stopped"
    assert json.loads((Path(hopeless["run_dir"]) / "trial.json").read_text())["state"] == "pruned"
    listed = last_json(torchtui("runs", "--runs-dir", str(tmp_path / "runs"), "--json").stdout)["runs"]
    assert [r["state"] for r in listed if r["run_dir"] == hopeless["run_dir"]] == ["pruned"]
    assert out["trials"][-1] == hopeless  # ranked after every complete trial


def test_a_killed_sweep_continues_without_redoing_finished_trials(tmp_path):
    path = sweep_file(tmp_path, {"method": "grid", "metric": "accuracy",
                                 "params": {"train.lr": [0.04, 0.02, 0.01, 0.005, 0.0025]}}, epochs=80)
    runs = tmp_path / "runs"
    child = subprocess.Popen([*CLI, "sweep", path, "--runs-dir", str(runs)], stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL, env=dict(os.environ), start_new_session=True)

    def finished() -> list[dict]:
        found = [json.loads(p.read_text()) for p in runs.glob("sweep-s/*/trial.json")]
        return [t for t in found if t["state"] == "complete"]

    deadline = time.monotonic() + 240
    while len(finished()) < 2:
        assert child.poll() is None, "the sweep ended before it could be killed"
        assert time.monotonic() < deadline, "no two trials finished"
        time.sleep(0.2)
    os.killpg(child.pid, signal.SIGKILL)  # the sweep and its workers, as a machine going down would
    child.wait()
    before = {t["number"]: t for t in finished()}
    out = run_sweep(path)
    complete = [t for t in out["trials"] if t["state"] == "complete"]
    assert sorted(t["params"]["train.lr"] for t in complete) == [0.0025, 0.005, 0.01, 0.02, 0.04]
    for number, t in before.items():  # finished before the kill: kept, not trained again
        again = [c for c in complete if c["params"] == t["params"]]
        assert [c["number"] for c in again] == [number]


def _a_trial_whose_trial_json_says_complete(tmp_path):
    """A grid sweep's trial 0, running in the study (its heartbeat fresh), whose trial.json says complete:
    the state a kill between trial.json's "complete" and Optuna's record of it leaves (CI hit this window)."""
    from torchtui.engine.sweep.study import Sweep, _suggest

    path = sweep_file(tmp_path, {"method": "grid", "metric": "accuracy", "params": {"train.lr": [0.02, 0.01]}})
    config, raw, _, _ = presets.load_with_sweep(path)
    base = config.to_dict()
    spec = sweep.parse(raw, base, None)
    folder = tmp_path / "runs" / "sweep-s"
    made = Sweep(spec, base, folder, "s")
    study = made.open()
    trial = study.ask()
    lr = _suggest(trial, spec.params[0])
    run_dir = folder / "s-t000"
    run_dir.mkdir()
    trial.set_user_attr("run_dir", str(run_dir))
    (run_dir / "trial.json").write_text(json.dumps({"sweep": "s", "number": trial.number, "params": {"train.lr": lr},
                                                    "state": "complete", "value": 0.875, "metric": "accuracy"}))
    study._storage.record_heartbeat(trial._trial_id)
    return path, made, study, trial, lr, run_dir


OWNER_SCRIPT = """import fcntl, os, socket, sys
folder = sys.argv[1]
os.makedirs(folder, exist_ok=True)
name = f"{socket.gethostname()}-{os.getpid()}"
fd = os.open(os.path.join(folder, name), os.O_RDWR | os.O_CREAT, 0o644)
fcntl.flock(fd, fcntl.LOCK_EX)
print(name, flush=True)
os.kill(os.getpid(), 9)
"""


def _kill_its_owner(made, study, trial) -> None:
    """A real process held the trial's owner lock, then died of SIGKILL (its heartbeat still fresh)."""
    import sys

    from torchtui.engine.sweep.owners import OWNERS
    from torchtui.engine.sweep.study import OWNER

    died = subprocess.run([sys.executable, "-c", OWNER_SCRIPT, str(made.folder / OWNERS)],
                          capture_output=True, text=True, timeout=60)
    assert died.returncode == -signal.SIGKILL
    study._storage.set_trial_system_attr(trial._trial_id, OWNER, died.stdout.strip())


@pytest.mark.filterwarnings("ignore:Heartbeat of storage")  # study.ask() outside optimize(), as a sweep's does
@pytest.mark.parametrize("how", ["heartbeat stale", "its process killed a moment ago"])
def test_a_trial_killed_after_its_trial_json_said_complete_is_not_trained_again(tmp_path, how):
    """The next run records the trial from its trial.json, whether its heartbeat went stale (the sweep died a
    minute ago) or its sweep process is known dead while the heartbeat is still fresh (run again at once, as
    the CI test does: the trial went stale later, inside optimize(), and its params trained a second time)."""
    import sqlite3

    from torchtui.engine.sweep.owners import OWNERS

    path, made, study, trial, lr, run_dir = _a_trial_whose_trial_json_says_complete(tmp_path)
    if how == "heartbeat stale":
        with sqlite3.connect(made.folder / "study.db") as db:
            db.execute("UPDATE trial_heartbeats SET heartbeat = datetime('now', '-60 seconds')")
    else:
        _kill_its_owner(made, study, trial)
    out = run_sweep(path)
    assert [(t["number"], t["state"]) for t in out["trials"] if t["params"]["train.lr"] == lr] == [(0, "complete")]
    kept = next(t for t in out["trials"] if t["number"] == 0)
    assert kept["value"] == 0.875 and kept["run_dir"] == str(run_dir)
    assert sorted(t["params"]["train.lr"] for t in out["trials"]) == [0.01, 0.02]  # the other point trained
    assert not any((made.folder / OWNERS).iterdir())  # the sweep gave its own owner file up


@pytest.mark.filterwarnings("ignore:Heartbeat of storage")
def test_a_trial_killed_mid_training_is_retried_at_once(tmp_path):
    """Killed before its run finished (no trial.json), its sweep process dead, its heartbeat fresh: a rerun
    that starts at once fails it and trains its params again. It waited for the heartbeat to go stale (8 s),
    and a rerun that finished its other points first ended with that one never trained (CI, again)."""
    path, made, study, trial, lr, run_dir = _a_trial_whose_trial_json_says_complete(tmp_path)
    (run_dir / "trial.json").unlink()
    _kill_its_owner(made, study, trial)
    out = run_sweep(path)
    states = sorted((t["params"]["train.lr"], t["state"]) for t in out["trials"])
    assert states == sorted([(0.01, "complete"), (0.02, "complete"), (lr, "failed")])
    retried = [t for t in out["trials"] if t["params"]["train.lr"] == lr and t["state"] == "complete"]
    assert [t["number"] for t in retried] != [0] and len(retried) == 1


@pytest.mark.filterwarnings("ignore:Heartbeat of storage")
def test_a_trial_of_a_live_sweep_process_is_left_to_it(tmp_path):
    """Another sweep process on the folder is alive (it holds its owner lock) and has not yet recorded its
    trial: a second process must not record it behind its back (Optuna's tell would then fail in the first)."""
    from optuna.trial import TrialState

    from torchtui.engine.sweep.study import OWNER

    _, made, study, trial, _, _ = _a_trial_whose_trial_json_says_complete(tmp_path)
    made.owners.take()
    try:
        study._storage.set_trial_system_attr(trial._trial_id, OWNER, made.owners.mine)
        made._recover_abandoned(study)
        assert study._storage.get_trial(trial._trial_id).state == TrialState.RUNNING
    finally:
        made.owners.give_up()
    made._recover_abandoned(study)  # its process gave the lock up without recording the trial: recorded now
    assert study._storage.get_trial(trial._trial_id).state == TrialState.COMPLETE


def test_parallel_trials_on_cpu_have_their_own_run_folders(tmp_path):
    out = run_sweep(sweep_file(tmp_path, {"method": "random", "metric": "accuracy", "trials": 4,
                                          "params": {"train.lr": {"log_uniform": [1.0e-3, 1.0e-1]}}}),
                    "--parallel", "2")
    dirs = [t["run_dir"] for t in out["trials"]]
    assert len(out["trials"]) == 4 and all(t["state"] == "complete" for t in out["trials"])
    assert len(set(dirs)) == 4 and all(Path(d, "summary.json").is_file() for d in dirs)
    threads = {yaml.safe_load(Path(d, "config.yaml").read_text())["device"]["threads"] for d in dirs}
    assert threads == {max(1, (os.cpu_count() or 1) // 2)}  # the cores split between the two at once


@pytest.mark.parametrize("section, message", [
    ({"method": "bayes", "params": {"train.lr": [0.1]}}, "sweep.method: unknown 'bayes'"),
    ({"metric": "acc", "params": {"train.lr": [0.1]}}, "sweep.metric: unknown 'acc'"),
    ({"params": {"train.lrr": [0.1]}}, "sweep.params.train.lrr: 0.1 does not make a valid setup"),
    ({"params": {"train.lr": {"uniform": [0.1, 0.01]}}}, "sweep.params.train.lr: low must be below high"),
    ({"params": {"train.lr": {"log_uniform": [0.0, 0.1]}}}, "log_uniform needs low > 0"),
    ({"params": {"train.lr": [-1.0]}}, "sweep.params.train.lr: -1.0 does not make a valid setup"),
    ({"method": "grid", "params": {"train.lr": {"uniform": [0.01, 0.1]}}}, "a grid needs a list of points"),
    ({"params": {}}, "sweep.params: a mapping of fields to search"),
    ({"trials": 0, "params": {"train.lr": [0.1]}}, "sweep.trials: must be a whole number"),
    ({"pruner": "median", "params": {"train.lr": [0.1]}}, "sweep.pruner: unknown key"),
])
def test_a_wrong_sweep_section_names_its_field(tmp_path, section, message):
    line = one_line_error(torchtui("sweep", sweep_file(tmp_path, section), "--runs-dir", str(tmp_path / "r")))
    assert message in line and "sweep.yaml:" in line


def test_train_refuses_a_sweep_preset_and_sweep_needs_a_section(tmp_path):
    path = sweep_file(tmp_path, {"params": {"train.lr": [0.1]}})
    assert "run it with `torchtui sweep" in one_line_error(torchtui("train", path))
    plain = tmp_path / "plain.yaml"
    plain.write_text(yaml.safe_dump(BASE))
    assert "has no sweep: section" in one_line_error(torchtui("sweep", str(plain)))


def test_grid_points_and_integer_ranges():
    spec = sweep.parse({"method": "grid", "params": {"model.layers[0].units": {"uniform": [8, 32], "step": 8},
                                                     "train.lr": [0.1, 0.01]}}, BASE)
    assert spec.trials == 8 and spec.params[0].integer
    assert spec.grid_points()[:3] == [{"model.layers[0].units": 8, "train.lr": 0.1},
                                      {"model.layers[0].units": 8, "train.lr": 0.01},
                                      {"model.layers[0].units": 16, "train.lr": 0.1}]
    with pytest.raises(ConfigError, match="the grid has"):
        sweep.parse({"method": "grid", "params": {f"model.layers[{i}].units": list(range(1, 40)) for i in (0, 1)}
                     | {"train.lr": [float(i + 1) / 1000 for i in range(100)]}}, BASE)


def test_a_different_sweep_in_the_same_folder_is_refused(tmp_path):
    path = sweep_file(tmp_path, {"method": "grid", "params": {"train.lr": [0.01]}}, epochs=1)
    run_sweep(path)
    changed = sweep_file(tmp_path, {"method": "grid", "params": {"train.lr": [0.02]}}, epochs=1)
    line = one_line_error(torchtui("sweep", changed, "--runs-dir", str(tmp_path / "runs")))
    assert "holds a different sweep" in line and "--name" in line
    beside = run_sweep(changed, "--name", "second")
    assert Path(beside["sweep_dir"]).name == "sweep-second" and beside["best"]["params"] == {"train.lr": 0.02}
