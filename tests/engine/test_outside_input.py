"""Bad input from outside the program, by class: YAML bombs in every YAML text, resume trusting a stale
config, finished runs, damaged checkpoints, tracebacks where one line is promised, absurd floats,
decompression bombs, wording, and the CLI's last-resort handler."""

from __future__ import annotations

import gzip
import json
import os
import struct
import time
from pathlib import Path

import pytest
import yaml

from torchtui.engine import presets
from torchtui.engine.overrides import parse_override
from torchtui.engine.schema import ConfigError

from .test_cli import TINY, last_json, one_line_error, torchtui

COMMANDS = ("train", "resume", "runs", "sweep", "ps", "attach", "stop", "presets", "summary")


def alias_bomb(levels: int) -> str:
    parts = ["&a0 [1, 1]"] + [f"&a{i} [*a{i - 1}, *a{i - 1}, *a{i - 1}, *a{i - 1}]" for i in range(1, levels)]
    return "[" + ", ".join(parts) + "]"


# ------------------------------------------------------------------ 1. every YAML text has the same limits

@pytest.mark.parametrize("levels", [9, 10, 12])
def test_an_alias_bomb_in_set_is_refused_quickly_with_a_short_message(levels):
    start = time.monotonic()
    done = torchtui("train", "moons", "--set", f"train.lr={alias_bomb(levels)}", timeout=60)
    line = one_line_error(done)
    assert time.monotonic() - start < 30
    assert "aliases" in line and len(done.stderr) < 400


def test_an_alias_bomb_in_a_field_or_a_run_config_is_refused():
    from torchtui.tui.panes.form import parse_raw

    with pytest.raises(ConfigError, match="aliases"):
        parse_override(f"model.layers={alias_bomb(10)}")
    assert parse_raw("number", alias_bomb(10)) == alias_bomb(10)  # left as text, for the check to reject


def test_a_value_in_a_message_is_an_excerpt(tmp_path):
    huge = "x" * 100_000
    line = one_line_error(torchtui("train", "moons", "--set", f"train.optimizer={huge}"))
    assert len(line) < 400
    nested = "[" * 50 + "]" * 50
    line = one_line_error(torchtui("train", "moons", "--set", f"train.lr={nested}"))
    assert len(line) < 400


@pytest.mark.parametrize("where", ["set", "preset"])
def test_an_integer_of_5000_digits_is_one_line(tmp_path, where):
    digits = "9" * 5000
    if where == "set":
        done = torchtui("train", "moons", "--set", f"train.epochs={digits}")
    else:
        path = tmp_path / "big.yaml"
        path.write_text(f"train:\n  epochs: {digits}\n")
        done = torchtui("train", str(path))
    line = one_line_error(done)
    assert "digits" in line and len(line) < 400


# ------------------------------------------------------------------ 2, 4, 5. resume

@pytest.fixture
def stopped_run(tmp_path) -> Path:
    done = torchtui("train", "moons", *TINY, "--runs-dir", str(tmp_path / "runs"), "--json")
    assert done.returncode == 0, done.stderr
    run_dir = Path(last_json(done.stdout)["run_dir"])
    summary = json.loads((run_dir / "summary.json").read_text())
    (run_dir / "summary.json").write_text(json.dumps({**summary, "state": "stopped"}))  # as if Ctrl-C
    return run_dir


def edit_config(run_dir: Path, change) -> None:
    data = yaml.safe_load((run_dir / "config.yaml").read_text())
    change(data)
    (run_dir / "config.yaml").write_text(yaml.safe_dump(data, sort_keys=False))


def test_resume_validates_config_yaml(stopped_run):
    text = (stopped_run / "config.yaml").read_text()
    (stopped_run / "config.yaml").write_text(text.replace("lr: 0.003", "lr: abc"))
    line = one_line_error(torchtui("resume", str(stopped_run), "--epochs", "3"))
    assert "config.yaml:" in line and "train.lr" in line
    (stopped_run / "config.yaml").write_text("train: [unclosed\n")
    line = one_line_error(torchtui("resume", str(stopped_run), "--epochs", "3"))
    assert "config.yaml:2" in line and "invalid YAML" in line


def test_resume_refuses_a_config_that_no_longer_matches_the_checkpoint(stopped_run):
    before = (stopped_run / "metrics.jsonl").read_bytes()
    edit_config(stopped_run, lambda d: d["model"].update(layers=[32, 64]))
    line = one_line_error(torchtui("resume", str(stopped_run), "--epochs", "3"))
    assert "model.layers[0].units" in line and "64 → 32" in line
    edit_config(stopped_run, lambda d: d["train"].update(batch_size=16))
    line = one_line_error(torchtui("resume", str(stopped_run), "--epochs", "3"))
    assert "train.batch_size" in line
    assert (stopped_run / "metrics.jsonl").read_bytes() == before  # nothing written


def test_resume_applies_an_edited_lr_and_records_it_as_a_live_change(stopped_run):
    edit_config(stopped_run, lambda d: d["train"].update(lr=0.0005))
    done = torchtui("resume", str(stopped_run), "--epochs", "3", "--json")
    assert done.returncode == 0, done.stderr
    rows = [json.loads(line) for line in (stopped_run / "metrics.jsonl").read_text().splitlines()]
    changes = [r for r in rows if r["type"] == "hparams"]
    assert changes and changes[-1]["lr"] == 0.0005
    after = [r for r in rows if r["type"] == "step" and r["step"] > changes[-1]["step"]]
    assert after and all(r["lr"] == 0.0005 for r in after)
    # config.yaml keeps the lr the run started with (as after a live change in the app): the edit is the live
    # change metrics.jsonl records, and `export` replays the run from its start setup.
    assert yaml.safe_load((stopped_run / "config.yaml").read_text())["train"]["lr"] == 0.003
    assert "recorded in metrics.jsonl as a live change" in done.stderr


def test_resume_of_a_finished_run_says_so_and_changes_nothing(tmp_path):
    done = torchtui("train", "moons", *TINY, "--runs-dir", str(tmp_path / "runs"), "--json")
    run_dir = Path(last_json(done.stdout)["run_dir"])
    files = {name: (run_dir / name).read_bytes() for name in ("summary.json", "config.yaml", "metrics.jsonl")}
    for extra in ([], ["--epochs", "1"], ["--epochs", "2"]):
        line = one_line_error(torchtui("resume", str(run_dir), *extra))
        assert "finished" in line and "--epochs 3" in line
    assert {name: (run_dir / name).read_bytes() for name in files} == files


def test_resume_with_no_epochs_left_is_refused_and_the_run_keeps_everything(stopped_run):
    """`resume --epochs N` at or below the epochs done rewrote a stopped run of 6,513 epochs as `finished` after
    7.8 s with no val metrics: it is refused like a finished run, and nothing in the folder changes."""
    files = {name: (stopped_run / name).read_bytes() for name in ("summary.json", "config.yaml", "metrics.jsonl")}
    done = json.loads(files["summary.json"])["epochs"]
    for epochs in (done - 1, done):
        line = one_line_error(torchtui("resume", str(stopped_run), "--epochs", str(epochs)))
        assert "train.epochs" in line and f"trained {done} epochs" in line and f"--epochs {done + 1}" in line
    assert {name: (stopped_run / name).read_bytes() for name in files} == files


def test_a_resumed_run_keeps_its_time_and_metrics_in_the_summary(stopped_run):
    """A summary is never rewritten with less than it had: the time adds up, the last metrics stay."""
    before = json.loads((stopped_run / "summary.json").read_text())
    (stopped_run / "summary.json").write_text(json.dumps({**before, "seconds": 1000.0}))  # a long first part
    done = torchtui("resume", str(stopped_run), "--epochs", str(before["epochs"] + 1), "--json")
    assert done.returncode == 0, done.stderr
    after = last_json(done.stdout)
    assert 1000.0 < after["seconds"] < 1100.0 and after["val"] and after["epochs"] == before["epochs"] + 1
    assert json.loads((stopped_run / "summary.json").read_text())["seconds"] == after["seconds"]


def test_a_damaged_last_checkpoint_is_named_and_best_is_offered(stopped_run):
    last = stopped_run / "checkpoints" / "last.pt"
    last.write_bytes(last.read_bytes()[:200])
    done = torchtui("resume", str(stopped_run), "--epochs", "3")
    line = one_line_error(done)
    assert "last.pt" in line and "damaged" in line and "--from best" in line
    assert "weights_only=False" not in done.stderr
    done = torchtui("resume", str(stopped_run), "--epochs", "3", "--from", "best", "--json")
    assert done.returncode == 0, done.stderr
    assert last_json(done.stdout)["epochs"] == 3


@pytest.mark.parametrize("arg", ["", " ", "\u2603", "x" * 5000])
def test_resume_of_no_run_folder_is_one_line(arg):
    assert "run folder" in one_line_error(torchtui("resume", arg))


# ------------------------------------------------------------------ 6, 7. values that cannot work

@pytest.mark.parametrize("setting", ["train.lr=1e308", "train.weight_decay=1e300", "train.grad_clip=1e39",
                                     "data.noise=1e300"])
def test_a_float_too_large_for_float32_is_a_config_error(setting):
    line = one_line_error(torchtui("train", "moons", "--set", setting))
    assert setting.split("=")[0] in line and "float32" in line


def test_an_unreadable_user_presets_folder_lists_the_builtins_and_warns(tmp_path, monkeypatch):
    if os.geteuid() == 0:
        pytest.skip("root reads any folder")
    folder = Path(os.environ["XDG_CONFIG_HOME"]) / "torchtui" / "presets"
    folder.mkdir(parents=True)
    folder.chmod(0)
    try:
        done = torchtui("presets")
    finally:
        folder.chmod(0o755)
    assert done.returncode == 0 and "moons" in done.stdout and "cannot read" in done.stderr


def test_list_presets_survives_a_folder_it_cannot_list(monkeypatch):
    real = Path.glob

    def refuse(self, pattern):
        if self == presets.user_dir():
            raise PermissionError(13, "Permission denied")
        return real(self, pattern)

    presets.user_dir().mkdir(parents=True, exist_ok=True)
    monkeypatch.setattr(Path, "glob", refuse)
    names = {i.name for i in presets.list_presets()}
    assert "moons" in names


# ------------------------------------------------------------------ 8. decompression bombs

def idx_gz(path: Path, count: int, payload: int) -> Path:
    with gzip.open(path, "wb", compresslevel=1) as fh:
        fh.write(struct.pack(">BBBB", 0, 0, 0x08, 3) + struct.pack(">III", count, 28, 28))
        chunk = b"\x00" * 1_000_000
        for _ in range(payload // len(chunk)):
            fh.write(chunk)
    return path


def test_an_idx_file_inflating_past_its_header_is_refused_without_inflating_it(tmp_path):
    from torchtui.engine.data.sources import files
    from torchtui.engine.errors import DataError

    bomb = idx_gz(tmp_path / "images-idx3-ubyte.gz", 10, 300_000_000)  # declares 7,840 bytes, holds 300 MB
    start = time.monotonic()
    with pytest.raises(DataError, match="more data than its header"):
        files.read_idx_file(bomb)
    assert time.monotonic() - start < 2
    huge = idx_gz(tmp_path / "huge-idx3-ubyte.gz", 2_000_000_000, 0)  # declares 1.5 TB
    with pytest.raises(DataError, match="declares"):
        files.read_idx_file(huge)


# ------------------------------------------------------------------ 9. wording

def test_what_a_preset_path_is_when_it_is_not_a_file(tmp_path):
    loop = tmp_path / "loop"
    loop.symlink_to(tmp_path / "loop")
    assert "is a folder" in one_line_error(torchtui("train", str(tmp_path)))
    assert "not a regular file" in one_line_error(torchtui("train", "/dev/zero"))
    assert "symlink loop" in one_line_error(torchtui("train", str(loop)))
    assert "no such file" in one_line_error(torchtui("train", str(tmp_path / "nope.yaml")))


def test_options_are_named_as_given():
    assert one_line_error(torchtui("train", "moons", "--epochs", "-1")).startswith("torchtui: error: --epochs")
    line = one_line_error(torchtui("train", "moons", "--set", "train.lr=abc"))
    assert line.startswith("torchtui: error: --set train.lr:")
    assert "moons.yaml" not in line


def test_json_mode_says_rejected_on_stdout():
    done = torchtui("train", "moons", "--epochs", "-1", "--json")
    assert done.returncode == 2
    out = last_json(done.stdout)
    assert out["state"] == "rejected" and "--epochs" in out["error"]


# ------------------------------------------------------------------ 10. the last-resort handler

def test_an_unexpected_exception_is_one_line_and_a_log(tmp_path, monkeypatch):
    from torchtui.cli import main as cli_main

    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))

    def boom(args):
        raise KeyError("surprise")

    monkeypatch.setattr(cli_main.command("ps"), "run", boom)
    assert cli_main.main(["ps"]) == 1
    log = tmp_path / "state" / "torchtui" / "errors.log"
    assert "KeyError" in log.read_text() and "Traceback" in log.read_text()


@pytest.mark.parametrize("arg", ["", "\u2603\u00e9\U0001f600", "x" * 20_000, "\udcff\udcfe\x01\x7f"])
def test_no_subcommand_shows_a_traceback_for_odd_arguments(arg):
    for name in COMMANDS:
        done = torchtui(name, arg, timeout=60)
        assert "Traceback" not in done.stdout + done.stderr, (name, done.stderr[-2000:])
        assert done.returncode in (0, 1, 2), (name, done.returncode, done.stderr[-500:])
