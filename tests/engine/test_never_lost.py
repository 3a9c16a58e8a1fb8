"""Never say all is well when it is not (issue 35): a key too short to authenticate is replaced, a sweep's
study is made once when two processes race for it, and a grid point is trained once. (The full disk's
tests are in test_faults.py.)"""

from __future__ import annotations

import os
import subprocess
import sys
from multiprocessing.connection import Client, Listener

import pytest
import yaml

from torchtui.engine import live

from .test_cli import CLI


@pytest.mark.parametrize("length", [0, 5, 31])
def test_a_key_too_short_to_authenticate_is_replaced_and_said(length, runtime, tmp_path):
    runtime.mkdir(mode=0o700)
    key = runtime / "authkey"
    fd = os.open(key, os.O_WRONLY | os.O_CREAT, 0o600)
    os.write(fd, b"k" * length)
    os.close(fd)
    runs = tmp_path / "runs"
    run = [*CLI, "train", "moons", "--set", "data.n_samples=200", "--epochs", "100000", "--device", "cpu",
           "--runs-dir", str(runs), "--detach"]
    started = subprocess.run(run, capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
    assert started.returncode == 0, started.stderr  # the server and its client agree on the new key
    said = started.stderr + (runs / "run-server.log").read_text()  # whichever of the two replaced it
    assert f"{key} held a {length}-byte key" in said and "made a new one" in said, said
    assert said.count("made a new one") == 1
    new = key.read_bytes()
    assert len(new) == 32 and new != b"k" * length and oct(key.stat().st_mode & 0o777) == "0o600"
    assert live.authkey() == new  # and it stays: the next reader takes it as it is
    (info,) = live.servers()
    stopped = subprocess.run([*CLI, "stop", info.run_id], capture_output=True, text=True, timeout=120)
    assert stopped.returncode == 0, stopped.stderr


def test_with_a_replaced_key_a_client_must_prove_it_holds_it(runtime):
    # Why an empty key is refused: multiprocessing.connection skips the HMAC challenge when the key is empty.
    runtime.mkdir(mode=0o700)
    (runtime / "authkey").touch(mode=0o600)
    key = live.authkey()
    with Listener(str(runtime / "s"), family="AF_UNIX", authkey=key) as listener:
        probe = subprocess.Popen([sys.executable, "-c", "from multiprocessing.connection import Client\n"
                                  f"Client({str(runtime / 's')!r}, family='AF_UNIX', authkey=b'')"],
                                 stderr=subprocess.PIPE, text=True)
        with pytest.raises(Exception):  # noqa: B017 - the listener refuses the client, whatever it raises
            listener.accept()
        assert probe.wait(timeout=30) != 0
    assert Client  # imported for the probe's text


# ------------------------------------------------------------------ sweeps under interruption

SWEEP = {"schema": 1, "name": "s", "data": {"source": "moons", "n_samples": 100},
         "model": {"layers": [4]}, "device": {"device": "cpu"},
         "train": {"loss": "cross_entropy", "lr": 0.01, "batch_size": 32, "epochs": 1},
         "sweep": {"method": "grid", "metric": "accuracy", "params": {"train.lr": [0.01, 0.02, 0.03]}}}


def trial_runs(folder) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if (p / "config.yaml").is_file())


@pytest.mark.parametrize("attempt", range(3))
def test_two_sweeps_started_at_once_make_the_study_once_and_train_each_point_once(attempt, tmp_path):
    preset = tmp_path / "sweep.yaml"
    preset.write_text(yaml.safe_dump(SWEEP))
    args = [*CLI, "sweep", str(preset), "--runs-dir", str(tmp_path / "runs"), "--name", "race"]
    both = [subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             stdin=subprocess.DEVNULL) for _ in range(2)]
    outs = [p.communicate(timeout=600) for p in both]
    for proc, (_, err) in zip(both, outs):
        assert proc.returncode == 0, err[-2000:]
        assert "internal error" not in err and "error:" not in err, err
    folder = tmp_path / "runs" / "sweep-race"
    lrs = sorted(yaml.safe_load((folder / name / "config.yaml").read_text())["train"]["lr"]
                 for name in trial_runs(folder))
    assert lrs == [0.01, 0.02, 0.03]  # each grid point trained exactly once


# ------------------------------------------------------------------ what the numbers mean

def test_a_classification_summary_says_its_f1_precision_and_recall_are_macro_averages(tmp_path):
    import json

    done = subprocess.run([*CLI, "train", "moons", "--set", "data.n_samples=200", "--epochs", "1", "--device", "cpu",
                           "--runs-dir", str(tmp_path / "runs"), "--json"], capture_output=True, text=True,
                          timeout=120, stdin=subprocess.DEVNULL)
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout.splitlines()[-1])
    assert summary["averages"] == {"f1": "macro", "precision": "macro", "recall": "macro"}
    assert json.loads((tmp_path / "runs" / summary["run_dir"].rsplit("/", 1)[1] / "summary.json").read_text())[
        "averages"]["f1"] == "macro"
