"""Sweeps shared by several processes (issue 29 items 3 and 4): every grid point trained exactly once by two
`torchtui sweep` processes on one study, on the default SQLite study and on a real PostgreSQL server (a
throw-away cluster, tests/engine/pg.py), with --parallel 1 and 2; random/TPE trials shared; a kill -9 of
one process mid-trial retried by the other. Measured before the fix: two processes on a 3x2 grid through
one study trained (0.1, 32) twice, and four processes popping 60 queued trials from SQLite took 15 twice.
"""

from __future__ import annotations

import itertools
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from . import pg
from .test_cli import CLI, last_json

GRID = {"train.lr": [0.01, 0.02], "train.batch_size": [16, 32]}
PRESET = {"schema": 1, "name": "shared", "data": {"source": "moons", "n_samples": 100},
          "model": {"layers": [4]}, "device": {"device": "cpu"},
          "train": {"loss": "cross_entropy", "lr": 0.01, "batch_size": 32, "epochs": 1},
          "sweep": {"method": "grid", "metric": "accuracy", "params": GRID}}


@pytest.fixture(scope="module")
def postgres():
    """A PostgreSQL server of our own for this module; skipped only where none is installed (CI installs it)."""
    if pg.binaries() is None:
        pytest.skip("PostgreSQL is not installed here (initdb not found): apt-get install postgresql, as .ci/run does")
    pytest.importorskip("psycopg", reason="psycopg is not installed: pip install 'torchtui[postgres]'")
    with pg.cluster() as url:
        yield url


def preset(tmp_path, sweep: dict | None = None, **train) -> str:
    data = json.loads(json.dumps(PRESET))
    data["train"].update(train)
    data["sweep"].update(sweep or {})
    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return str(path)


STARTED: list[subprocess.Popen] = []


@pytest.fixture(autouse=True)
def no_sweep_left():
    """A test that fails half-way leaves no sweep (or its worker) training behind it."""
    yield
    while STARTED:
        proc = STARTED.pop()
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate(timeout=60)


def start(path: str, runs: Path, *args: str) -> subprocess.Popen:
    proc = subprocess.Popen([*CLI, "sweep", path, "--runs-dir", str(runs), "--json", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL, start_new_session=True)
    STARTED.append(proc)
    return proc


def finish(proc: subprocess.Popen) -> dict:
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err[-3000:]
    assert "Traceback" not in err and "error" not in err.lower(), err[-3000:]
    return last_json(out)


def trained(runs: Path) -> list[tuple]:
    """(lr, batch size) of every trial run under `runs`, however many sweep folders it holds."""
    configs = [yaml.safe_load(p.read_text()) for p in runs.glob("**/sweep-*/*/config.yaml")]
    return sorted((c["train"]["lr"], c["train"]["batch_size"]) for c in configs)


def complete(result: dict) -> list[tuple]:
    return sorted((t["params"]["train.lr"], t["params"]["train.batch_size"])
                  for t in result["trials"] if t["state"] == "complete")


POINTS = sorted(itertools.product(*GRID.values()))


# ------------------------------------------------------------------ the queue in the storage

POP = """import json, sys, warnings
warnings.filterwarnings("ignore")
import optuna
from optuna.trial import TrialState, create_trial
from torchtui.engine.sweep.rdb import open_storage
optuna.logging.set_verbosity(optuna.logging.ERROR)
url, name = sys.argv[1], sys.argv[2]
storage = open_storage(url, engine_kwargs={"connect_args": {"timeout": 60}} if url.startswith("sqlite") else None)
study = optuna.create_study(storage=storage, study_name=name, load_if_exists=True)
print("ready", flush=True)
sys.stdin.readline()  # all start together
trials = [create_trial(state=TrialState.WAITING, system_attrs={"fixed_params": {"x": i}}) for i in range(30)]
storage.enqueue_once(study._study_id, "queued", 30, trials)
taken = []
while (trial_id := study._pop_waiting_trial_id()) is not None:
    taken.append(trial_id)
print(json.dumps(taken), flush=True)
"""


def test_processes_queue_trials_once_and_each_takes_a_queued_trial_alone(tmp_path):
    """Three processes queue 30 trials on one SQLite study at once and take them until none is left: the trials
    are queued once, and each is taken by one process (plain RDBStorage: 15 of 60 taken twice by four). On
    PostgreSQL Optuna's own SELECT ... FOR UPDATE does this; the sweeps below queue and take through it."""
    url = f"sqlite:///{tmp_path / 'q.db'}"
    procs = [subprocess.Popen([sys.executable, "-c", POP, url, "pop"], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(3)]
    for proc in procs:  # every process has opened the study (the first made its tables) before any queues
        assert proc.stdout.readline().strip() == "ready", proc.stderr.read()[-2000:]
    for proc in procs:
        proc.stdin.write("go\n")
        proc.stdin.flush()
    taken = []
    for proc in procs:
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err[-2000:]
        taken += json.loads(out.splitlines()[-1])
    assert len(taken) == 30 and len(set(taken)) == 30


# ------------------------------------------------------------------ two torchtui sweep processes

@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_two_sweeps_on_one_grid_train_every_point_exactly_once(backend, tmp_path, request):
    """SQLite: two terminals on one machine, one folder and its study.db. PostgreSQL: two "machines", each its
    own runs folder, one study on the server. One process takes trials one at a time, the other two at once."""
    path = preset(tmp_path)
    if backend == "sqlite":
        runs = [tmp_path / "runs"] * 2
        extra = []
    else:
        runs = [tmp_path / "a", tmp_path / "b"]
        extra = ["--storage", request.getfixturevalue("postgres"), "--name", "grid-once"]
    procs = [start(path, runs[0], "--parallel", "1", *extra), start(path, runs[1], "--parallel", "2", *extra)]
    results = [finish(proc) for proc in procs]
    assert trained(tmp_path) == POINTS  # each point's run folder once, wherever it trained
    for result in results:  # and both processes report the whole grid, each point complete once
        assert complete(result) == POINTS


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_random_trials_on_postgresql_are_shared_not_repeated(tmp_path, postgres):
    """Two "machines" on one TPE study ask for its 4 trials: together they train 4 (5 when both finish one as
    the count is reached), not 4 each; what each reports complete is what was trained (the one that ends first
    may still see the other's last trial running)."""
    path = preset(tmp_path, {"method": "tpe", "trials": 4, "params": {"train.lr": {"log_uniform": [1e-3, 1e-1]}}})
    args = ["--storage", postgres, "--name", "tpe-shared"]
    procs = [start(path, tmp_path / name, *args) for name in "ab"]
    results = [finish(proc) for proc in procs]
    dirs = sorted(p.parent for p in tmp_path.glob("*/sweep-*/*/config.yaml"))
    done = {t["number"]: Path(t["run_dir"]) for r in results for t in r["trials"] if t["state"] == "complete"}
    assert 4 <= len(done) <= 5 and sorted(done.values()) == dirs


def test_a_process_killed_mid_trial_has_its_point_trained_by_the_other(tmp_path, postgres):
    """Two "machines" on one PostgreSQL grid; one is killed (-9, with its worker) in the middle of a long trial.
    The other, its own points done, sees the dead process's trial (its owner lock is free), fails it and trains
    the point itself: every point complete exactly once, the killed attempt listed as failed."""
    grid = {"train.lr": [0.01, 0.02], "train.epochs": [1, 80]}
    path = preset(tmp_path, {"params": grid}, batch_size=8)
    args = ["--storage", postgres, "--name", "killed"]
    procs = {name: start(path, tmp_path / name, *args) for name in "ab"}

    def long_run_in_progress() -> str | None:
        for name in procs:
            for config in (tmp_path / name).glob("sweep-*/*/config.yaml"):
                run = config.parent
                if yaml.safe_load(config.read_text())["train"]["epochs"] == 80 and not (run / "trial.json").exists() \
                        and '"split": "val"' in _text(run / "metrics.jsonl"):
                    return name
        return None

    deadline = time.monotonic() + 180
    while (victim := long_run_in_progress()) is None:
        assert all(p.poll() is None for p in procs.values()), "a sweep ended before one could be killed"
        assert time.monotonic() < deadline, "no long trial got under way"
        time.sleep(0.02)
    os.killpg(procs[victim].pid, signal.SIGKILL)  # the sweep and its worker, as a machine going down would
    procs[victim].communicate(timeout=60)
    survivor = finish(procs["b" if victim == "a" else "a"])
    points = sorted(itertools.product(*grid.values()))
    done = sorted((t["params"]["train.lr"], t["params"]["train.epochs"]) for t in survivor["trials"]
                  if t["state"] == "complete")
    assert done == points
    failed = [t for t in survivor["trials"] if t["state"] == "failed"]
    assert len(failed) == 1 and failed[0]["params"]["train.epochs"] == 80
    assert str(tmp_path / victim) in failed[0]["run_dir"]
    retried = [t for t in survivor["trials"] if t["state"] == "complete" and t["params"] == failed[0]["params"]]
    assert str(tmp_path / victim) not in retried[0]["run_dir"]


def _text(path: Path) -> str:
    try:
        return path.read_text()
    except OSError:
        return ""
