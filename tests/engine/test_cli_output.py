"""What the CLI prints on a terminal: lines and tables that fit its width (COLUMNS), steps written one way,
and how many threads a run computes with; piped output stays plain lines."""

from __future__ import annotations

import io
import re
import sys

import pytest

from torchtui.cli import output
from torchtui.cli.progress import Progress
from torchtui.engine import protocol as p
from torchtui.engine.formatting import fmt_step

ESCAPES = re.compile(r"\x1b\[[0-9;]*[A-Za-z]|\r")


class Terminal(io.StringIO):
    """A stdout that says it is a terminal (the progress line redraws itself in place on one)."""

    def isatty(self) -> bool:
        return True


def started(**changes) -> p.RunStarted:
    fields = dict(run_id="20261207-105634-moons-with-a-long-name", run_dir="/home/user/runs/20261207-105634-moons",
                  name="moons", task="binary", loss="bce", device="cpu", params=4_481, trainable=4_481,
                  splits={"train": 1_600, "val": 200, "test": 200}, steps_per_epoch=25, total_steps=2_500,
                  epochs=100, start_step=0, start_epoch=0, config={}, threads=1)
    return p.RunStarted(**{**fields, **changes})


def stats(step: int) -> p.StepStats:
    return p.StepStats(run_id="r", step=[step], epoch=step / 25, loss=[0.123456], lr=[0.003], acc_steps=[], acc=[],
                       layer_steps=[], grad_norm=[], layer_grad_norm=[], update_ratio=[], samples_per_s=41_234.5,
                       eta_s=83.0, progress=0.5, data_wait=0.31)


def drawn_lines(out: Terminal) -> list[str]:
    """What a terminal shows: each \\r starts the line again."""
    return [part for line in out.getvalue().split("\n") for part in [ESCAPES.sub("", line.split("\r")[-1])]]


@pytest.mark.parametrize("columns", [80, 120])
def test_the_live_progress_line_fits_the_terminal(columns, monkeypatch):
    monkeypatch.setenv("COLUMNS", str(columns))
    out = Terminal()
    progress = Progress(out)
    progress.handle(started())
    progress.handle(p.EvalResult(run_id="r", split="val", step=1_641, epoch=65,
                                 metrics={"loss": 0.2345, "accuracy": 0.9612, "f1": 0.9555}))
    progress.handle(stats(1_641))
    lines = drawn_lines(out)  # the first line (run id, sizes, folder) is printed once: it may wrap, once
    assert len(lines[-1]) < columns, lines[-1]  # the line redrawn in place must not, or each redraw adds one
    assert lines[-1].startswith("epoch 65.64/100  step 1,641/2,500  loss 0.1235")
    assert "ETA 01:23" in lines[-1]
    if columns == 120:
        assert "val loss 0.2345 accuracy 0.9612 f1 0.9555" in lines[-1] and "41,234 samples/s" in lines[-1]
    else:  # the val metrics said shorter rather than dropped
        assert "val accuracy 0.9612" in lines[-1]


def test_piped_progress_lines_are_whole_and_steps_read_one_way(monkeypatch):
    monkeypatch.setenv("COLUMNS", "80")
    out = io.StringIO()
    progress = Progress(out)
    progress.handle(started())
    progress.handle(stats(1_641))
    progress.handle(p.EvalResult(run_id="r", split="val", step=1_641, epoch=65,
                                 metrics={"loss": 0.2345, "accuracy": 0.9612, "f1": 0.9555}))
    lines = out.getvalue().splitlines()
    assert lines[1] == ("epoch 65 step 1,641: train loss 0.1235  val loss 0.2345 accuracy 0.9612 f1 0.9555 "
                        "41,234 samples/s  data wait 31% (raise data.workers)")  # longer than 80: not cut
    assert fmt_step(1641) == "1,641"


def test_the_first_line_says_threads_and_where_the_run_folder_is():
    out = io.StringIO()
    Progress(out).handle(started(threads=3))
    first = out.getvalue().splitlines()[0]
    assert first.startswith("run 20261207-105634-moons-with-a-long-name on cpu (3 threads): 4,481 parameters")
    assert first.endswith("-> /home/user/runs/20261207-105634-moons")


def test_fit_table_drops_low_priority_columns_then_cuts_cells():
    header = ["run", "state", "steps", "accuracy best/final", "model.layers[0].units", "train.lr"]
    rows = [["20261207-105634-moons-sweep-t003", "finished", "1200", "0.97/0.96", "64", "0.003"],
            ["20261207-105634-moons-sweep-t004", "finished", "1200", "0.95/0.95", "16", "0.0003"]]
    wide = output.fit_table(header, rows, None)
    assert len(wide) == 3 and wide[0].split() == " ".join(header).split()  # no terminal: every column, as before
    lines = output.fit_table(header, rows, 75, priority=[0, 1, 3, 5, 4, 2])
    assert all(len(line) <= 75 for line in lines), lines
    assert lines[0].split()[:3] == ["run", "state", "accuracy"] and "train.lr" in lines[0]
    assert lines[-1].startswith("(2 more columns: steps, model.layers[0].units")
    narrow = output.fit_table(header, rows, 20)
    assert all(len(line) <= 20 for line in narrow), narrow
    assert narrow[1].endswith("t003") and narrow[2].endswith("t004")  # the end that tells them apart is kept


def test_terminal_width_is_none_when_piped(monkeypatch):
    monkeypatch.setenv("COLUMNS", "80")
    assert output.terminal_width(Terminal()) == 80
    assert output.terminal_width(io.StringIO()) is None


def test_the_live_sweep_table_fits_the_terminal(monkeypatch):
    from types import SimpleNamespace

    from torchtui.cli.sweep import Table

    monkeypatch.setenv("COLUMNS", "80")
    monkeypatch.setenv("LINES", "10")
    out = Terminal()
    table = Table(out, SimpleNamespace(metric="accuracy"), json_mode=False)
    for number in range(12):
        table.changed(SimpleNamespace(number=number, state="complete", value=0.9, epoch=10, seconds=12.5, started=0,
                                      params={"train.lr": 0.0003, "model.layers[0].units": 64,
                                              "train.optimizer": "adamw", "train.weight_decay": 0.0001}))
    shown = out.getvalue().split("\x1b[")[-1]  # the last redraw, after its cursor-up-and-clear
    rows = shown.split("J", 1)[1].splitlines() if "J" in shown else shown.splitlines()
    assert rows and all(len(row) < 80 for row in rows), rows
    assert len(rows) <= 8 and rows[-1].startswith("trial  11")  # the newest trials, within the screen


def test_headless_runs_and_exported_scripts_use_the_apps_thread_default(capsys, tmp_path):
    """device.threads 0: one thread per core less one, in `train` (said in its first line) and in `export`."""
    from torchtui.cli.main import main
    from torchtui.engine.run.device_config import default_threads

    code = main(["train", "moons", "--set", "data.n_samples=200", "--epochs", "1", "--device", "cpu"])
    first = capsys.readouterr().out.splitlines()[0]
    n = default_threads()
    assert code == 0 and f"on cpu ({n} thread{'' if n == 1 else 's'}):" in first, first
    assert default_threads(2) == 1 and default_threads(16) == 15
    assert main(["export", "moons", "-o", "-"]) == 0
    assert "torch.set_num_threads(max(1, (os.cpu_count() or 2) - 1))" in capsys.readouterr().out


def test_ps_shows_the_runs_start_and_fits_the_terminal(tmp_path, monkeypatch, capsys):
    import json
    import time

    from torchtui.cli.main import main
    from torchtui.engine import live

    run_dir = tmp_path / "runs" / "20261207-105634-moons-with-a-long-name"
    run_dir.mkdir(parents=True)
    began = time.mktime((2026, 12, 7, 10, 56, 34, 0, 0, -1))
    (run_dir / "origin.json").write_text(json.dumps({"created": began, "preset": "moons"}))
    server = live.ServerInfo(pid=4242, socket="/tmp/x.sock", started=began - 3600, run_id=run_dir.name,
                             run_dir=str(run_dir), name="moons", state="running", device="cpu", step=1641,
                             epoch=65.6, total_steps=2500, metric="accuracy 0.9612", clients=1)
    monkeypatch.setattr(live, "servers", lambda: [server])
    assert main(["ps", "--json"]) == 0
    (row,) = json.loads(capsys.readouterr().out.splitlines()[-1])["runs"]
    assert row["started"] == "2026-12-07 10:56:34"  # the run's, not the server's an hour before
    monkeypatch.setenv("COLUMNS", "80")
    monkeypatch.setattr(sys, "stdout", Terminal())
    assert main(["ps"]) == 0
    lines = sys.stdout.getvalue().splitlines()
    assert all(len(line) <= 80 for line in lines) and "1,641/2,500" in lines[1], lines
