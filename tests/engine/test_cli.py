"""The headless `torchtui` command, run as a real subprocess: outputs, run folders, exit codes, Ctrl-C.

Every child gets os.environ, which the autouse `isolated_dirs` fixture has pointed at tmp_path
(TORCHTUI_RUNS_DIR, XDG_CONFIG_HOME), so nothing here touches ./runs or ~/.config.
"""

from __future__ import annotations

import json
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import yaml

CLI = [sys.executable, "-m", "torchtui.cli"]
# Tiny and CPU-only: a couple of seconds per train command, most of it importing torch.
TINY = ["--set", "data.n_samples=200", "--set", "train.epochs=2", "--device", "cpu"]
BUILTINS = ("line", "moons", "circles", "xor", "blobs", "spiral")
CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")  # anything but \t and \n
EVAL_LINE = re.compile(r"^epoch \d+ step [\d,]+: (train loss \S+  )?(val|test) ")


def torchtui(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=timeout,
                          env=dict(os.environ), stdin=subprocess.DEVNULL)


def _no_constants(name: str):
    raise AssertionError(f"{name} is not JSON: strict parsers reject it")


def last_json(stdout: str) -> dict:
    lines = [line for line in stdout.splitlines() if line.strip()]
    assert lines, "nothing on stdout"
    return json.loads(lines[-1], parse_constant=_no_constants)


def one_line_error(result: subprocess.CompletedProcess) -> str:
    """Exit 2, one line on stderr, no traceback; returns that line."""
    assert result.returncode == 2, (result.returncode, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr + result.stdout
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


def step_numbers(run_dir: Path) -> list[int]:
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines() if line.strip()]
    return [row["step"] for row in rows if row["type"] == "step"]


# ------------------------------------------------------------------ train --json and the run folder

@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """One tiny `train moons --json` run shared by several tests (its own runs dir)."""
    root = tmp_path_factory.mktemp("trained")
    env = dict(os.environ, TORCHTUI_RUNS_DIR=str(root / "runs"), XDG_CONFIG_HOME=str(root / "xdg"))
    result = subprocess.run([*CLI, "train", "moons", *TINY, "--json"], capture_output=True, text=True,
                            timeout=120, env=env, stdin=subprocess.DEVNULL)
    return result


def test_train_json_summary(trained, tmp_path):
    assert trained.returncode == 0, trained.stderr
    summary = last_json(trained.stdout)
    for key in ("state", "run_dir", "epochs", "steps", "seconds", "val", "test"):
        assert key in summary, key
    assert summary["state"] == "finished"
    assert summary["epochs"] == 2
    assert summary["steps"] > 0 and summary["seconds"] > 0
    for key in ("accuracy", "f1", "loss"):
        assert isinstance(summary["val"][key], float), key
    assert summary["test"]  # moons has a test split
    # --json: stdout carries only the JSON line, progress goes to stderr
    assert [line for line in trained.stdout.splitlines() if line.strip()] == [trained.stdout.strip()]
    assert "epoch 2 step" in trained.stderr


def test_train_writes_run_folder(trained):
    summary = last_json(trained.stdout)
    run_dir = Path(summary["run_dir"])
    assert run_dir.is_dir()
    for name in ("config.yaml", "metrics.jsonl", "checkpoints/last.pt", "summary.json"):
        assert (run_dir / name).is_file(), name
    on_disk = json.loads((run_dir / "summary.json").read_text())
    assert on_disk["state"] == "finished" and on_disk["steps"] == summary["steps"]
    assert step_numbers(run_dir) == list(range(1, summary["steps"] + 1))


def test_run_config_loads_back_as_a_preset(trained, tmp_path):
    run_dir = Path(last_json(trained.stdout)["run_dir"])
    config = yaml.safe_load((run_dir / "config.yaml").read_text())
    assert config["data"]["n_samples"] == 200 and config["device"]["device"] == "cpu"
    result = torchtui("train", str(run_dir / "config.yaml"), "--epochs", "1", "--json")
    assert result.returncode == 0, result.stderr
    again = last_json(result.stdout)
    assert again["state"] == "finished" and again["epochs"] == 1
    assert Path(again["run_dir"]) != run_dir
    assert Path(again["run_dir"]).parent == tmp_path / "runs"  # TORCHTUI_RUNS_DIR was honoured


def test_piped_output_is_plain_lines_one_per_evaluation(tmp_path):
    result = torchtui("train", "moons", *TINY)
    assert result.returncode == 0, result.stderr
    for stream in (result.stdout, result.stderr):
        assert "\r" not in stream and "\x1b" not in stream
        assert not CONTROL.search(stream), repr(stream)
    evals = [line for line in result.stdout.splitlines() if EVAL_LINE.match(line)]
    (run_dir,) = (tmp_path / "runs").iterdir()
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    eval_rows = [r for r in rows if r["type"] == "eval"]
    assert len(evals) == len(eval_rows) == 3  # val after each of 2 epochs, test at the end
    # each val line also gives the mean train loss since the one before (train vs val shows overfitting)
    assert [line.split(":")[1].split()[0] for line in evals] == ["train", "train", "test"]
    assert all(" val loss " in line for line in evals[:2])
    assert result.stdout.splitlines()[-1].startswith("finished")


# ------------------------------------------------------------------ usage and config errors: exit 2

def test_bad_value_names_the_field():
    line = one_line_error(torchtui("train", "moons", "--set", "train.lr=abc"))
    assert "train.lr: must be a positive number" in line


def test_unknown_key_suggests():
    line = one_line_error(torchtui("train", "moons", "--set", "train.lrr=1"))
    assert "train.lrr" in line and "did you mean 'lr'" in line


def test_unknown_preset_suggests():
    line = one_line_error(torchtui("train", "mons"))
    assert "mons" in line and "did you mean 'moons'" in line


def test_malformed_set():
    line = one_line_error(torchtui("train", "moons", "--set", "train.lr"))
    assert "train.lr" in line and "KEY=VALUE" in line


def test_invalid_yaml_names_file_and_line(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("train:\n  lr: 0.1\n  epochs: [1, 2\nmodel: {}\n")
    line = one_line_error(torchtui("train", str(bad)))
    assert re.search(re.escape(str(bad)) + r":\d+: invalid YAML", line), line


def test_missing_file(tmp_path):
    missing = tmp_path / "nope.yaml"
    line = one_line_error(torchtui("train", str(missing)))
    assert "nope.yaml" in line


def test_argparse_errors_exit_2():
    line = one_line_error(torchtui("train", "moons", "--no-such-option"))
    assert "--no-such-option" in line
    one_line_error(torchtui("train"))  # missing PRESET


def test_no_arguments_exits_2():
    # Without a terminal bare `torchtui` cannot open the app: it says what to use instead.
    result = torchtui()
    line = one_line_error(result)
    assert "torchtui" in line


# ------------------------------------------------------------------ divergence: exit 1

def test_diverged_run_exits_1():
    result = torchtui("train", "moons", *TINY, "--set", "train.lr=1e6", "--set", "train.optimizer=sgd", "--json")
    assert result.returncode == 1, result.stderr
    summary = last_json(result.stdout)
    assert summary["state"] == "diverged"
    assert re.search(r"step \d+", summary["reason"]), summary["reason"]
    assert "Traceback" not in result.stderr


def test_overflowing_loss_is_strict_json_everywhere():
    """The loss overflows to inf: --json, summary.json and metrics.jsonl still parse strictly (null, not Infinity)."""
    result = torchtui("train", "line", "--set", "train.lr=1e6", "--set", "train.loss=mse",  # every epoch evaluated:
                      "--set", "data.val_fraction=0.2", "--set", "train.eval_budget=0", "--json")  # one overflowed
    assert result.returncode == 1, result.stderr
    summary = last_json(result.stdout)
    # The loss overflowed float32 (null); mse, computed in float64 in the data's units, is the real number.
    assert summary["val"]["loss"] is None and "largest gradients in layer 'head'" in summary["reason"]
    assert summary["val"]["mse"] > 1e30
    run_dir = Path(summary["run_dir"])
    json.loads((run_dir / "summary.json").read_text(), parse_constant=_no_constants)
    for line in (run_dir / "metrics.jsonl").read_text().splitlines():
        json.loads(line, parse_constant=_no_constants)


# ------------------------------------------------------------------ presets and summary

def test_presets_lists_builtins_with_descriptions():
    result = torchtui("presets")
    assert result.returncode == 0, result.stderr
    rows = {line.split()[0]: line for line in result.stdout.splitlines() if line.strip()}
    for name in BUILTINS:
        assert name in rows, name
        assert "built-in" in rows[name]
        description = rows[name].split("built-in", 1)[1].strip()
        assert len(description) > 10, rows[name]


def test_presets_list_includes_user_presets(tmp_path):
    folder = tmp_path / "xdg" / "torchtui" / "presets"
    folder.mkdir(parents=True)
    (folder / "mine.yaml").write_text("description: my own preset\n")
    result = torchtui("presets", "list")
    assert result.returncode == 0, result.stderr
    (row,) = [line for line in result.stdout.splitlines() if line.startswith("mine ")]
    assert "user" in row and "my own preset" in row


def test_presets_show_prints_yaml():
    result = torchtui("presets", "show", "line")
    assert result.returncode == 0, result.stderr
    data = yaml.safe_load(result.stdout)
    assert isinstance(data, dict) and data["name"] == "line"


def test_presets_show_unknown_name():
    line = one_line_error(torchtui("presets", "show", "lin"))
    assert "did you mean 'line'" in line


@pytest.mark.parametrize("body, total", [
    ("data: {source: blobs, features: 784, classes: 10}\nmodel: {layers: [128]}\ntrain: {loss: cross_entropy}\n",
     "101,770"),
    ("data: {source: blobs, features: 8, classes: 2}\nmodel: {layers: [{units: 4, activation: none}]}\n"
     "train: {loss: cross_entropy}\n", "46"),
], ids=["mnist-mlp", "linear-8-4-2"])
def test_summary_totals(tmp_path, body, total):
    preset = tmp_path / "model.yaml"
    preset.write_text(body)
    result = torchtui("summary", str(preset))
    assert result.returncode == 0, result.stderr
    (line,) = [line for line in result.stdout.splitlines() if line.startswith("Total params")]
    assert line.split(":")[1].strip() == total
    assert total in result.stdout


# ------------------------------------------------------------------ Ctrl-C, then resume

def _read_lines(stream, lines: queue.Queue) -> None:
    for line in stream:
        lines.put(line)
    lines.put(None)


def interrupt_training(sig) -> tuple[int, str]:
    """Start a long `train` (stdout piped), send `sig` once a progress line is out; (exit code, stderr).
    The stdout lines after the signal go to `interrupt_training.rest`."""
    # 44 steps per epoch with an evaluation every 5 steps: the signal lands mid-epoch.
    proc = subprocess.Popen(
        [*CLI, "train", "moons", "--set", "data.n_samples=1000", "--set", "train.batch_size=16",
         "--set", "train.eval_every=5", "--set", "train.epochs=5000", "--device", "cpu"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True, env=dict(os.environ))
    lines: queue.Queue = queue.Queue()
    threading.Thread(target=_read_lines, args=(proc.stdout, lines), daemon=True).start()
    try:
        deadline = time.monotonic() + 60
        seen = []
        while True:
            left = deadline - time.monotonic()
            assert left > 0, f"no progress line within 60 s: {seen}"
            try:
                line = lines.get(timeout=left)
            except queue.Empty:
                continue
            assert line is not None, f"train ended before any progress line: {seen} {proc.stderr.read()}"
            seen.append(line)
            if EVAL_LINE.match(line):
                break
        proc.send_signal(sig)
        code = proc.wait(timeout=60)
        rest = []
        while (line := lines.get(timeout=10)) is not None:
            rest.append(line)
        interrupt_training.rest = "".join(rest)
        return code, proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_ctrl_c_stops_saves_and_resume_continues(tmp_path):
    code, stderr = interrupt_training(signal.SIGINT)
    assert code == 130, stderr
    assert "stopping" in stderr
    assert "continue it: torchtui resume " in interrupt_training.rest, interrupt_training.rest
    assert "Traceback" not in stderr
    (run_dir,) = (tmp_path / "runs").iterdir()
    stopped = json.loads((run_dir / "summary.json").read_text())
    assert stopped["state"] == "stopped"
    assert (run_dir / "checkpoints" / "last.pt").is_file()
    assert stopped["steps"] > 0
    assert step_numbers(run_dir) == list(range(1, stopped["steps"] + 1))

    result = torchtui("resume", str(run_dir), "--epochs", str(stopped["epochs"] + 1), "--json")
    assert result.returncode == 0, result.stderr
    finished = last_json(result.stdout)
    assert finished["state"] == "finished"
    assert f"resuming from step {stopped['steps']:,}" in result.stderr
    assert Path(finished["run_dir"]) == run_dir
    assert finished["steps"] > stopped["steps"]
    steps = step_numbers(run_dir)
    assert all(b > a for a, b in zip(steps, steps[1:])), "step numbers repeat or go back"
    assert steps == list(range(1, finished["steps"] + 1))
    assert json.loads((run_dir / "summary.json").read_text())["state"] == "finished"


def test_resume_of_a_non_run_folder(tmp_path):
    line = one_line_error(torchtui("resume", str(tmp_path)))
    assert "not a run folder" in line


@pytest.mark.parametrize("signame", ["SIGTERM", "SIGHUP"])
def test_sigterm_and_sighup_stop_like_ctrl_c(tmp_path, signame):
    sig = getattr(signal, signame, None)
    if sig is None:
        pytest.skip(f"no {signame} here")
    code, stderr = interrupt_training(sig)
    assert code == 130, stderr  # README: 130 interrupted
    assert "stopping" in stderr and "Traceback" not in stderr
    (run_dir,) = (tmp_path / "runs").iterdir()
    assert json.loads((run_dir / "summary.json").read_text())["state"] == "stopped"
    assert (run_dir / "checkpoints" / "last.pt").is_file()
