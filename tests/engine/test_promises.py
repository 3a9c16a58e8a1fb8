"""Promises the README makes, kept in every case (issue 34): `--json` always ends stdout with one JSON object;
damaged run folders are named, never rewritten with less; odd targets say what is wrong; metrics in data
units do not overflow. CLI processes on real files."""

from __future__ import annotations

import csv
import json
import random
import shutil
from pathlib import Path

import pytest
import yaml

from torchtui.cli.main import build_parser

from .test_cli import last_json, one_line_error, torchtui

CSV_RUN = ["--set", "data.source=csv", "--set", "data.target=y", "--device", "cpu"]


def json_commands() -> set[str]:
    """The commands that take --json, read from the CLI's own parser."""
    parser = build_parser()
    (sub,) = [a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction"]
    return {name for name, p in sub.choices.items() if any("--json" in a.option_strings for a in p._actions)}


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("files")
    (root / "bad.yaml").write_text("schema: 1\nname: bad\ntrian: {lr: 0.1}\n")  # an unknown key
    (root / "empty.csv").write_text("")
    (root / "raises.py").write_text("import torch.nn as nn\n\nclass Net(nn.Module):\n    def __init__(self, **kw):\n"
                                    "        super().__init__()\n        raise RuntimeError('constructor blew up')\n")
    (root / "not-a-folder").write_text("a file\n")
    run = root / "broken-run"  # a run folder whose config.yaml is not a valid setup
    run.mkdir()
    (run / "config.yaml").write_text("schema: 1\nname: x\ntrian: {}\n")
    return root


def cases(files: Path) -> dict[str, list[list[str]]]:
    """Per --json command: a bad argument, a bad file and a bad preset (or run folder), each way it can end."""
    bad_arg = ["--no-such-option"]
    return {
        "train": [["moons", *bad_arg], [str(files / "nope.yaml")], [str(files / "bad.yaml")],
                  ["moons", *CSV_RUN, "--set", f"data.path={files / 'nope.csv'}"],
                  ["moons", *CSV_RUN, "--set", f"data.path={files / 'empty.csv'}"],
                  ["moons", "--set", "model.kind=custom", "--set", f"model.module={files / 'raises.py'}:Net"]],
        "sweep": [["moons", *bad_arg], [str(files / "nope.yaml")], [str(files / "bad.yaml")],
                  ["moons"]],  # a preset without a sweep: section
        "lr-find": [["moons", *bad_arg], [str(files / "nope.yaml")], [str(files / "bad.yaml")],
                    ["moons", *CSV_RUN, "--set", f"data.path={files / 'nope.csv'}"]],
        "resume": [[str(files / "broken-run"), *bad_arg], [str(files / "nope")], [str(files / "broken-run")]],
        "predict": [[str(files / "broken-run"), "-i", "x.csv", *bad_arg], [str(files / "nope"), "-i", "x.csv"],
                    [str(files / "broken-run"), "-i", "x.csv"]],
        "runs": [[*bad_arg], ["--runs-dir", str(files / "not-a-folder")], ["--sort", "no-such-column"]],
        "ps": [[*bad_arg]],
        "rewind": [["some-run", *bad_arg], ["no-such-run"]],  # no live run to rewind
    }


def test_every_json_command_has_cases(files):
    assert json_commands() == set(cases(files))  # a new --json command needs its bad cases here


@pytest.mark.parametrize("command", ["train", "sweep", "lr-find", "resume", "predict", "runs", "ps", "rewind"])
def test_json_ends_stdout_with_one_object_however_the_command_ends(command, files, tmp_path):
    for args in cases(files)[command]:
        result = torchtui(command, *args, "--json", "--runs-dir", str(tmp_path / "runs")) \
            if command in ("train", "sweep", "runs") and "--runs-dir" not in args \
            else torchtui(command, *args, "--json")
        line = one_line_error(result)
        answer = last_json(result.stdout)
        assert answer["state"] == "rejected" and answer["error"] == line.removeprefix("torchtui: error: "), args


# ------------------------------------------------------------------ damaged run folders

@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    """One tiny finished moons run."""
    runs = tmp_path_factory.mktemp("trained") / "runs"
    done = torchtui("train", "moons", "--set", "data.n_samples=200", "--epochs", "2", "--device", "cpu",
                    "--runs-dir", str(runs), "--json")
    assert done.returncode == 0, done.stderr
    return Path(last_json(done.stdout)["run_dir"])


def test_metrics_of_binary_junk_export_with_a_note_and_are_not_rewritten_by_resume(trained, tmp_path):
    run = tmp_path / "junk"
    shutil.copytree(trained, run)
    junk = random.Random(0).randbytes(5000)
    (run / "metrics.jsonl").write_bytes(junk)
    exported = torchtui("export", str(run), "-o", str(tmp_path / "script.py"))
    assert exported.returncode == 0, exported.stderr  # it was UnicodeDecodeError, an internal error
    assert "damaged line(s), skipped: any live change recorded on them is missing" in exported.stderr
    resumed = torchtui("resume", str(run), "--epochs", "3", "--json")
    line = one_line_error(resumed)
    assert f"{run / 'metrics.jsonl'} has" in line and "damaged line(s) (the first is line 1)" in line
    assert (run / "metrics.jsonl").read_bytes() == junk  # nothing rewritten with less
    assert last_json(resumed.stdout)["state"] == "rejected"


def test_a_torn_last_line_is_what_a_kill_leaves_and_resume_takes_it(trained, tmp_path):
    run = tmp_path / "torn"
    shutil.copytree(trained, run)
    with open(run / "metrics.jsonl", "a") as fh:
        fh.write('{"type": "step", "st')
    resumed = torchtui("resume", str(run), "--epochs", "3", "--json")
    assert resumed.returncode == 0, resumed.stderr
    assert last_json(resumed.stdout)["state"] == "finished"


@pytest.fixture(scope="module")
def other_model(tmp_path_factory) -> Path:
    runs = tmp_path_factory.mktemp("other") / "runs"
    done = torchtui("train", "spiral", "--set", "data.n_samples=300", "--epochs", "1", "--device", "cpu",
                    "--runs-dir", str(runs), "--json")
    assert done.returncode == 0, done.stderr
    return Path(last_json(done.stdout)["run_dir"])


def test_predict_refuses_a_checkpoint_and_config_yaml_that_describe_different_models(trained, other_model,
                                                                                     tmp_path):
    inputs = tmp_path / "in.csv"
    inputs.write_text("x0,x1\n0.1,0.2\n1.0,-0.5\n")
    assert torchtui("predict", str(trained), "-i", str(inputs), "-o", "-").returncode == 0  # the control
    copied = tmp_path / "copied"
    shutil.copytree(trained, copied)
    shutil.copy(other_model / "checkpoints" / "best.pt", copied / "checkpoints" / "best.pt")
    edited = tmp_path / "edited"
    shutil.copytree(trained, edited)
    config = yaml.safe_load((edited / "config.yaml").read_text())
    config["model"]["layers"][0]["units"] = 7
    (edited / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    for folder, field in ((copied, "len(model.layers)"), (edited, "model.layers[0].units 7 vs")):
        line = one_line_error(torchtui("predict", str(folder), "-i", str(inputs), "-o", "-"))
        assert f"{folder / 'config.yaml'} and {folder / 'checkpoints' / 'best.pt'} describe different models" in line
        assert field in line, line


# ------------------------------------------------------------------ odd targets

def write_csv(path: Path, rows: list[tuple]) -> Path:
    with open(path, "w", newline="") as fh:
        csv.writer(fh).writerows([("a", "b", "y"), *rows])
    return path


@pytest.mark.parametrize("case", ["one class", "a single row", "two rows of two classes"])
def test_a_target_that_cannot_be_classes_says_why(case, tmp_path):
    rng = random.Random(0)
    rows = {"one class": [(rng.random(), rng.random(), 1) for _ in range(50)],
            "a single row": [(0.1, 0.2, 1)],
            "two rows of two classes": [(0.1, 0.2, 1), (0.3, 0.1, 0)]}[case]
    path = write_csv(tmp_path / "t.csv", rows)
    line = one_line_error(torchtui("train", "moons", *CSV_RUN, "--set", f"data.path={path}", "--epochs", "1",
                                   "--runs-dir", str(tmp_path / "runs")))
    assert "continuous regression targets" not in line  # what it said before: the target is 0/1 labels
    expected = {"one class": "column 'y' holds one value only (1, in 50 row(s))",
                "a single row": "column 'y' holds one value only (1, in 1 row(s))",
                "two rows of two classes": "2 different whole numbers in 2 row(s): too few rows"}[case]
    assert line.startswith("torchtui: error: data.target: ") and expected in line, line


def test_regression_metrics_near_1e30_are_finite_and_match_scikit_learn(tmp_path):
    metrics = pytest.importorskip("sklearn.metrics")
    rng = random.Random(1)
    rows = [(x, rng.random(), x * 1e30 + rng.random() * 1e29) for x in (rng.random() for _ in range(300))]
    path = write_csv(tmp_path / "huge.csv", rows)
    done = torchtui("train", "moons", *CSV_RUN, "--set", f"data.path={path}", "--set", "train.loss=mse",
                    "--set", "data.shuffle=false", "--set", "data.val_fraction=0.2", "--set", "data.test_fraction=0",
                    "--epochs", "3", "--runs-dir", str(tmp_path / "runs"), "--json")
    assert done.returncode == 0, done.stderr
    summary = last_json(done.stdout)
    val = summary["val"]
    assert val["mse"] is not None and val["r2"] is not None  # both were null: float32 overflowed past 3.4e38
    # The val split is the last 20 % of rows (no shuffle): predict them and score with scikit-learn.
    tail = write_csv(tmp_path / "val.csv", rows[240:])
    predicted = torchtui("predict", summary["run_dir"], "-i", str(tail), "-o", str(tmp_path / "p.csv"),
                         "--checkpoint", "last")
    assert predicted.returncode == 0, predicted.stderr
    with open(tmp_path / "p.csv") as fh:
        out = [float(r["prediction"]) for r in csv.DictReader(fh)]
    truth = [r[2] for r in rows[240:]]
    assert val["mse"] == pytest.approx(metrics.mean_squared_error(truth, out), rel=1e-3)
    assert val["r2"] == pytest.approx(metrics.r2_score(truth, out), rel=1e-3, abs=1e-4)
    assert json.loads(json.dumps(val))  # plain JSON numbers
