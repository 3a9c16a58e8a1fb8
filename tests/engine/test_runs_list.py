"""`torchtui runs` and the catalog under it: real tiny runs, damaged folders, sorting, filtering, lineage,
the run folder's writer lock, and curve.f64 agreeing with metrics.jsonl."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from torchtui.engine import catalog, curves
from torchtui.engine.runs import RunFolder, RunInUse

from .test_cli import TINY, last_json, one_line_error, torchtui


@pytest.fixture(scope="module")
def three_runs(tmp_path_factory):
    """Three tiny moons runs: lr 0.01, lr 0.001, and lr 0.001 with 32 units in the first layer."""
    root = tmp_path_factory.mktemp("runs")
    for extra in (["--set", "train.lr=0.01"], ["--set", "train.lr=0.001"],
                  ["--set", "train.lr=0.001", "--set", "model.layers[0].units=32"]):
        done = torchtui("train", "moons", *TINY, *extra, "--runs-dir", str(root))
        assert done.returncode == 0, done.stderr
    return root


def listing(root, *args) -> dict:
    done = torchtui("runs", "--runs-dir", str(root), "--json", *args)
    assert done.returncode == 0, done.stderr
    return last_json(done.stdout)


def evals(run_dir: str) -> list[dict]:
    rows = [json.loads(line) for line in (Path(run_dir) / "metrics.jsonl").read_text().splitlines()]
    return [r for r in rows if r["type"] == "eval" and r["split"] == "val"]


def test_runs_json_lists_each_run_with_what_differs_and_its_metrics(three_runs):
    out = listing(three_runs)
    assert out["differing"] == ["model.layers[0].units", "train.lr"]
    runs = out["runs"]
    assert [r["differs"] for r in runs] == [{"model.layers[0].units": 64, "train.lr": 0.01},
                                           {"model.layers[0].units": 64, "train.lr": 0.001},
                                           {"model.layers[0].units": 32, "train.lr": 0.001}]
    for run in runs:
        assert run["state"] == "finished" and run["live"] is False and run["problem"] == ""
        assert run["preset"] == "moons" and run["parent"] == ""
        summary = json.loads((Path(run["run_dir"]) / "summary.json").read_text())
        assert run["steps"] == summary["steps"] and run["epochs"] == 2
        rows = evals(run["run_dir"])
        assert run["best"]["accuracy"] == max(r["accuracy"] for r in rows)
        assert run["best"]["loss"] == min(r["loss"] for r in rows)
        assert run["final"]["accuracy"] == rows[-1]["accuracy"] == summary["val"]["accuracy"]
        assert run["test"]["accuracy"] == summary["test"]["accuracy"]


def test_runs_sort_and_filter(three_runs):
    by_lr = listing(three_runs, "--sort", "train.lr")["runs"]
    assert [r["differs"]["train.lr"] for r in by_lr] == [0.001, 0.001, 0.01]
    best_first = listing(three_runs, "--sort", "accuracy")["runs"]
    assert [r["best"]["accuracy"] for r in best_first] == sorted((r["best"]["accuracy"] for r in best_first),
                                                                 reverse=True)
    low_loss = listing(three_runs, "--sort", "final.loss")["runs"]
    assert [r["final"]["loss"] for r in low_loss] == sorted(r["final"]["loss"] for r in low_loss)
    assert len(listing(three_runs, "--filter", "train.lr=0.001")["runs"]) == 2
    only = listing(three_runs, "--filter", "moons model.layers[0].units=32")
    assert len(only["runs"]) == 1 and only["differing"] == []  # one run: nothing differs
    assert listing(three_runs, "--filter", "no-such-run")["runs"] == []
    refused = torchtui("runs", "--runs-dir", str(three_runs), "--sort", "bogus")
    assert "cannot sort by 'bogus'" in one_line_error(refused)


def test_runs_table_text(three_runs):
    done = torchtui("runs", "--runs-dir", str(three_runs))
    lines = done.stdout.splitlines()
    assert done.returncode == 0 and len(lines) == 4
    assert lines[0].split()[:5] == ["run", "state", "epochs", "steps", "time"]
    assert "train.lr" in lines[0] and "model.layers[0].units" in lines[0] and "accuracy best/final" in lines[0]
    assert all("finished" in line for line in lines[1:])


def test_damaged_folders_are_listed_with_their_problem(tmp_path, three_runs):
    import shutil

    root = tmp_path / "runs"
    shutil.copytree(three_runs, root)
    a, b, c = sorted(root.iterdir())
    (a / "summary.json").write_text('{"state": ')  # cut short
    with open(b / "metrics.jsonl", "a") as fh:
        fh.write('{"type": "step", "step": 999, "ep')  # a kill mid-write
    (c / "config.yaml").write_text("train: [unclosed\n")
    (c / "origin.json").write_text('{"created": "yesterday", "parent": [1], "trial": "x"}')  # wrong types
    (a / "trial.json").write_text("[]")
    (root / "empty-folder").mkdir()  # no run files: not listed
    (root / "no-config").mkdir()
    (root / "no-config" / "metrics.jsonl").write_bytes(b"\x00\xff garbage\n")
    out = listing(root)
    problems = {Path(r["run_dir"]).name: r["problem"] for r in out["runs"]}
    assert set(problems) == {a.name, b.name, c.name, "no-config"}
    assert "summary.json is damaged" in problems[a.name]
    assert "last line is cut short" in problems[b.name]
    assert "config.yaml" in problems[c.name] and "invalid YAML" in problems[c.name]
    assert "no config.yaml" in problems["no-config"] and "damaged line" in problems["no-config"]
    text = torchtui("runs", "--runs-dir", str(root))
    assert text.returncode == 0 and "Traceback" not in text.stderr
    assert "problem" in text.stdout.splitlines()[0]


def test_a_run_continued_from_a_checkpoint_records_its_parent(tmp_path, three_runs):
    parent = sorted(three_runs.iterdir())[0]
    root = tmp_path / "runs"
    done = torchtui("train", "moons", *TINY, "--runs-dir", str(root),
                    "--set", f"model.pretrained={parent}/checkpoints/best.pt")
    assert done.returncode == 0, done.stderr
    (run,) = listing(root)["runs"]
    assert run["parent"] == parent.name
    origin = json.loads((Path(run["run_dir"]) / "origin.json").read_text())
    assert origin["parent"] == {"run_id": parent.name, "run_dir": str(parent.resolve()), "checkpoint": "best"}
    header, row = torchtui("runs", "--runs-dir", str(root)).stdout.splitlines()
    assert header.split()[5] == "parent" and row.split()[5] == parent.name  # lineage in the table


def test_curve_file_agrees_with_the_step_rows_and_is_read_without_it(three_runs):
    run_dir = sorted(three_runs.iterdir())[0]
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    steps = [r for r in rows if r["type"] == "step"]
    fast = curves.read_curves(run_dir)
    assert fast.step.tolist() == [r["step"] for r in steps]
    assert np.allclose(fast.loss, [r["loss"] for r in steps])
    assert np.allclose(fast.epoch, [r["epoch"] for r in steps], atol=1e-6)
    assert fast.evals["accuracy"][2].tolist() == [r["accuracy"] for r in evals(str(run_dir))]
    copy = run_dir.parent.parent / "no-curve" / run_dir.name
    copy.mkdir(parents=True, exist_ok=True)
    (copy / "metrics.jsonl").write_bytes((run_dir / "metrics.jsonl").read_bytes())
    (copy / "curve.f64").write_bytes((run_dir / "curve.f64").read_bytes()[:-24])  # one step short: ignored
    slow = curves.read_curves(copy)
    assert slow.step.tolist() == fast.step.tolist() and np.allclose(slow.loss, fast.loss)


def test_truncating_metrics_truncates_the_curve_file(tmp_path):
    folder = RunFolder.create(tmp_path, "t")
    for step in range(1, 11):
        folder.append_metrics([{"type": "step", "step": step, "epoch": step / 5, "loss": 1.0 / step, "lr": 0.1}],
                              [step, step / 5, 1.0 / step])
    folder.append_metrics([{"type": "hparams", "step": 4, "lr": 0.2}])
    folder.truncate_metrics_after(6)
    read = curves.read_curves(folder.path)
    assert read.step.tolist() == [1, 2, 3, 4, 5, 6]
    assert read.changes == [(4, 0.8, "lr 0.2")]


def test_a_run_folder_has_one_writer_and_a_killed_one_leaves_no_lock(tmp_path):
    folder = RunFolder.create(tmp_path, "locked")
    folder.write_config({"name": "locked"})
    folder.lock()
    assert folder.writer() == os.getpid()
    with pytest.raises(RunInUse, match=f"in use by pid {os.getpid()}"):
        RunFolder(folder.path).lock()
    assert catalog.Catalog(tmp_path).scan()[0].state == "running"  # a writer alive, no summary
    folder.unlock()
    assert folder.writer() is None
    code = ("import sys, time; from torchtui.engine.runs import RunFolder; RunFolder(sys.argv[1]).lock(); "
            "print('locked', flush=True); time.sleep(60)")
    child = subprocess.Popen([sys.executable, "-c", code, str(folder.path)], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline().strip() == "locked"
        with pytest.raises(RunInUse, match=f"pid {child.pid}"):
            RunFolder(folder.path).lock()
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
    again = RunFolder(folder.path)
    again.lock()  # the kernel dropped the dead process's lock
    again.unlock()
    assert catalog.Catalog(tmp_path).scan()[0].state == catalog.INTERRUPTED


def test_resume_refuses_a_run_another_process_writes(three_runs, tmp_path):
    import shutil

    run_dir = tmp_path / "r"
    shutil.copytree(sorted(three_runs.iterdir())[0], run_dir)
    holder = RunFolder(run_dir)
    holder.lock()
    try:
        line = one_line_error(torchtui("resume", str(run_dir), "--epochs", "3"))
    finally:
        holder.unlock()
    assert f"in use by pid {os.getpid()}" in line


def test_differing_fields_and_flatten():
    a = catalog.RunRecord("a", "a", config={"name": "x", "train": {"lr": 0.1, "betas": [0.9, 0.99]},
                                            "model": {"layers": [{"units": 8}, {"units": 8}]}})
    b = catalog.RunRecord("b", "b", config={"name": "y", "train": {"lr": 0.1, "betas": [0.9, 0.98]},
                                            "model": {"layers": [{"units": 8}, {"units": 16}, {"units": 4}]}})
    assert catalog.differing([a, b]) == ["train.betas", "model.layers[1].units", "len(model.layers)"]
    assert a.differs == {"train.betas": [0.9, 0.99], "model.layers[1].units": 8, "len(model.layers)": 2}
    assert catalog.matches(b, "y model.layers[2].units=4") and not catalog.matches(a, "model.layers[2].units=4")


class _Terminal:
    """A stdout that is a terminal, collecting what is printed."""

    def __init__(self):
        self.text = ""

    def write(self, text):
        self.text += text
        return len(text)

    def flush(self):
        pass

    def isatty(self):
        return True


@pytest.mark.parametrize("columns", [80, 120])
def test_runs_fits_the_terminal_and_pipes_stay_whole(three_runs, columns, monkeypatch, capsys):
    from torchtui.cli.main import main

    assert main(["runs", "--runs-dir", str(three_runs)]) == 0
    piped = capsys.readouterr().out.splitlines()
    assert max(map(len, piped)) > 120 and "train.lr" in piped[0] and "steps" in piped[0]  # whole, as before
    monkeypatch.setenv("COLUMNS", str(columns))
    terminal = _Terminal()
    monkeypatch.setattr(sys, "stdout", terminal)
    assert main(["runs", "--runs-dir", str(three_runs)]) == 0
    lines = terminal.text.splitlines()
    assert all(len(line) <= columns for line in lines), [len(line) for line in lines]
    assert lines[0].split()[:2] == ["run", "state"] and len(lines) == 5  # header, 3 runs, the columns left out
    assert lines[-1].startswith("(") and "more column" in lines[-1]
    assert [line.split()[0] for line in lines[1:4]] == [line.split()[0] for line in piped[1:4]]  # ids whole
    assert "accuracy best/final" in lines[0] and "model.layers[0].units" in lines[0]  # what tells them apart stays
    if columns == 120:
        assert "train.lr" in lines[0]
