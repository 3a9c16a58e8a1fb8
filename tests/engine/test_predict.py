"""`torchtui predict`: a trained run's checkpoint and preprocessing applied to new inputs (issue 13 item 4)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from torchtui.cli.main import main
from torchtui.engine import protocol as p
from torchtui.engine.host import InProcessHost
from torchtui.engine.presets import load

from .helpers import run_to_end, tiny
from .test_tabular import penguins

IRIS = Path(__file__).resolve().parents[2] / "presets" / "examples" / "iris.csv"


@pytest.fixture
def trained(tmp_path):
    """Train configs to the end in-process; returns the run folder of each."""
    host = InProcessHost(str(tmp_path / "runs"))

    def train(config) -> Path:
        events, done = run_to_end(host, config)
        assert done is not None and done.state == p.FINISHED, events[-3:]
        return Path(done.summary["run_dir"])

    yield train
    host.close()


def predict(capsys, *args) -> tuple[int, dict, str]:
    code = main(["predict", *map(str, args), "--json"])
    out, err = capsys.readouterr()
    lines = out.strip().splitlines()
    return code, json.loads(lines[-1]) if lines else {}, err


def read(path) -> list[dict]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def test_csv_iris_predictions_match_the_labels(trained, capsys, tmp_path):
    run_dir = trained(load("csv-iris").to_dict())
    code, result, err = predict(capsys, run_dir, "--input", IRIS)
    assert code == 0, err
    rows = read(result["output"])
    assert len(rows) == 150 and set(rows[0]) >= {"species", "prediction", "p_setosa", "p_virginica"}
    hits = sum(r["prediction"] == r["species"] for r in rows) / len(rows)
    assert hits >= 0.9 and result["accuracy"] == pytest.approx(hits)
    assert all(abs(sum(float(r[f"p_{c}"]) for c in ("setosa", "versicolor", "virginica")) - 1) < 1e-4 for r in rows)


def test_penguins_predict_fills_encodes_and_answers_in_grams(trained, capsys, tmp_path):
    path = penguins(tmp_path / "p.csv")
    config = {"name": "penguins", "data": {"source": "csv", "path": path, "target": "body_mass_g",
                                           "missing": "median", "standardize": True},
              "model": {"layers": [32]}, "train": {"epochs": 30, "batch_size": 16, "lr": 0.01},
              "device": {"device": "cpu"}}
    run_dir = trained(config)
    new = tmp_path / "new.csv"  # no target, a gap, and an island the run never saw
    new.write_text("species,island,bill_length_mm,flipper_length_mm,sex\n"
                   "Gentoo,Biscoe,47.0,217,MALE\nAdelie,Atlantis,,190,FEMALE\n")
    code, result, err = predict(capsys, run_dir, "--input", new, "--checkpoint", "last")
    assert code == 0, err
    rows = read(result["output"])
    gentoo, adelie = (float(r["prediction"]) for r in rows)
    assert 4800 < gentoo < 6600 and 3000 < adelie < 4400, (gentoo, adelie)  # grams, not standard deviations
    code, result, err = predict(capsys, run_dir, "--input", path)  # the training file itself, target included
    assert code == 0 and result["mae"] < 400, (err, result)


@pytest.mark.parametrize("header, needle", [
    ("species,island,bill_length_mm,sex", "lacks the column(s) 'flipper_length_mm'"),
    ("species,island,bill_length_mm,flipper_length_mm,sex,colour", "has column(s) 'colour'"),
])
def test_a_missing_or_extra_column_is_named(trained, capsys, tmp_path, header, needle):
    run_dir = trained({**tiny(), "data": {"source": "csv", "path": penguins(tmp_path / "p.csv"),
                                          "target": "body_mass_g", "missing": "mean"}})
    bad = tmp_path / "bad.csv"
    bad.write_text(header + "\n" + ",".join(["Adelie", "Dream", "40", "190", "MALE", "red"][:header.count(",") + 1])
                   + "\n")
    code, result, err = predict(capsys, run_dir, "--input", bad)
    assert code == 2 and needle in err and result["state"] == "rejected"


def test_a_gap_is_an_error_when_the_run_filled_none(trained, capsys, tmp_path):
    run_dir = trained(load("csv-iris").to_dict())  # data.missing: error
    gap = tmp_path / "gap.csv"
    gap.write_text("sepal_length,sepal_width,petal_length,petal_width\n5.1,,1.4,0.2\n5.0,3.0,x,0.2\n")
    code, _, err = predict(capsys, run_dir, "--input", gap)
    assert code == 2 and "'sepal_width': missing value" in err and "'x' is not a number" in err


def test_arrays_and_idx_inputs(trained, capsys, tmp_path):
    run_dir = trained(tiny(epochs=5))  # moons: 2 features, binary
    x = torch.tensor([[-1.0, 0.2], [2.0, 0.0], [0.0, 0.3]])
    np.savez(tmp_path / "points.npz", X=x.numpy())
    code, result, err = predict(capsys, run_dir, "--input", tmp_path / "points.npz", "-o", tmp_path / "out.csv")
    assert code == 0, err
    rows = read(tmp_path / "out.csv")
    assert [r["index"] for r in rows] == ["0", "1", "2"] and all(r["prediction"] in ("0", "1") for r in rows)
    torch.save({"X": torch.zeros(2, 5)}, tmp_path / "wide.pt")
    code, _, err = predict(capsys, run_dir, "--input", tmp_path / "wide.pt")
    assert code == 2 and "shape (5,)" in err and "(2,)" in err


def test_a_run_folder_without_a_checkpoint_or_a_folder_that_is_not_a_run(trained, capsys, tmp_path):
    run_dir = trained(tiny(epochs=1))
    (run_dir / "checkpoints" / "best.pt").unlink()
    code, _, err = predict(capsys, run_dir, "--input", IRIS)
    assert code == 2 and "no checkpoints/best.pt" in err and "--checkpoint last" in err
    code, _, err = predict(capsys, tmp_path, "--input", IRIS)
    assert code == 2 and "predict:" in err and "not a run folder" in err


def test_a_column_training_dropped_is_passed_through(trained, capsys, tmp_path):
    """data.columns: ['-customer_id']: predict ignores the id and echoes it, so predictions join back to rows."""
    table = tmp_path / "customers.csv"
    lines = penguins(tmp_path / "p.csv", n=60, gaps=False)
    rows = Path(lines).read_text().splitlines()
    table.write_text("\n".join([f"customer_id,{rows[0]}"] + [f"c{i:03d},{r}" for i, r in enumerate(rows[1:])]) + "\n")
    run_dir = trained({**tiny(epochs=1), "data": {"source": "csv", "path": str(table), "target": "body_mass_g",
                                                  "columns": ["-customer_id"]}})
    new = tmp_path / "new.csv"
    new.write_text("customer_id,species,island,bill_length_mm,flipper_length_mm,sex\n"
                   "c900,Gentoo,Biscoe,47.0,217,MALE\nc901,Adelie,Dream,38.0,190,FEMALE\n")
    code, result, err = predict(capsys, run_dir, "--input", new)
    assert code == 0, err
    out = read(result["output"])
    assert [r["customer_id"] for r in out] == ["c900", "c901"] and all(r["prediction"] for r in out)
