"""CLI edges a new user hits: a misspelt command, Ctrl-C in each command (one line, exit 130)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from torchtui.cli.main import main

SWEEP = str(Path(__file__).resolve().parents[2] / "presets" / "examples" / "moons-sweep.yaml")


def test_misspelt_command_suggests_the_command(capsys):
    assert main(["trian", "moons"]) == 2
    out = capsys.readouterr()
    assert out.err == "torchtui: error: unknown command 'trian' — did you mean 'train'?\n"
    assert out.out == ""


def test_a_preset_named_like_a_command_still_opens_the_app(capsys, tmp_path):
    # `torchtui PRESET` opens the app: a word is taken for a misspelt command only when it names no preset.
    folder = tmp_path / "xdg" / "torchtui" / "presets"
    folder.mkdir(parents=True)
    (folder / "trian.yaml").write_text("schema: 1\nname: trian\n")
    assert main(["trian"]) == 2
    assert "the app needs a terminal" in capsys.readouterr().err  # it went to the app (stdin is no terminal)


@pytest.mark.parametrize("argv, target", [
    (["lr-find", "moons", "--device", "cpu"], "torchtui.engine.run.lr_find.for_config"),
    (["export", "moons", "-o", "-"], "torchtui.engine.export.export"),
    (["runs"], "torchtui.engine.catalog.Catalog.scan"),
])
def test_ctrl_c_says_interrupted_once(argv, target, capsys, monkeypatch):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(target, interrupted)
    assert main(argv) == 130
    out = capsys.readouterr()
    assert out.err == "torchtui: interrupted\n"


def test_ctrl_c_in_a_sweep_prints_no_traceback(tmp_path):
    """SIGINT once the sweep has announced itself: the trials stop, no Optuna traceback, exit 130."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "torchtui.cli", "sweep", SWEEP, "--device", "cpu", "--set", "data.n_samples=200",
         "--set", "train.epochs=500", "--runs-dir", str(tmp_path / "runs")],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=dict(os.environ), stdin=subprocess.DEVNULL)
    try:
        first = proc.stdout.readline()  # "sweep moons-sweep: grid, 6 trials … -> folder"
        assert first.startswith("sweep moons-sweep:"), first
        row = proc.stdout.readline()  # "trial   0  running …": a trial is training
        assert row.startswith("trial"), row
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == 130, (out, err)
    assert "Traceback" not in err and "failed with" not in err, err
    assert (out + err).count("Traceback") == 0


def test_a_failed_trial_says_why_in_one_row_without_a_traceback(capsys):
    """A diverged trial: its row names the reason; Optuna's traceback warning about it is not printed."""
    import io
    from types import SimpleNamespace

    import optuna

    from torchtui.cli.sweep import Table
    from torchtui.engine.sweep import quiet

    quiet.install()
    optuna.logging.set_verbosity(optuna.logging.WARNING)

    def objective(trial):
        raise quiet.TrialEnded(f"trial {trial.number} diverged: non-finite loss at step 1,641")

    optuna.create_study().optimize(objective, n_trials=1, catch=(RuntimeError,))
    assert "Traceback" not in capsys.readouterr().err
    out = io.StringIO()
    view = SimpleNamespace(number=0, state="failed", value=None, epoch=3, seconds=2.0, started=0,
                           params={"train.lr": 3.0}, reason="non-finite loss at step 1,641")
    Table(out, SimpleNamespace(metric="accuracy"), json_mode=False).changed(view)
    assert out.getvalue().rstrip().endswith("train.lr=3  (non-finite loss at step 1,641)")
