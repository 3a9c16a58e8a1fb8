"""CSVs as people have them: missing cells, text columns, a target in the thousands (issue 18)."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch

from torchtui.engine import protocol as p
from torchtui.engine.config import DataConfig
from torchtui.engine.data.splits import load_data
from torchtui.engine.data.tabular import MISSING_TEXT
from torchtui.engine.errors import DataError
from torchtui.engine.host import InProcessHost

from .helpers import run_to_end

SPECIES = {"Adelie": (190, 39, 0), "Gentoo": (217, 47, 500), "Chinstrap": (196, 49, 0)}


def penguins(path, n=340, gaps=True) -> str:
    """A palmerpenguins-shaped table: two text columns, gaps in a number and a text column, mass in grams."""
    rnd = random.Random(0)
    rows = ["species,island,bill_length_mm,flipper_length_mm,sex,body_mass_g"]
    for i in range(n):
        species = rnd.choice(sorted(SPECIES))
        flipper, bill, extra = SPECIES[species]
        island = {"Gentoo": "Biscoe", "Chinstrap": "Dream"}.get(species) or rnd.choice(["Torgersen", "Biscoe"])
        sex = rnd.choice(["MALE", "FEMALE"])
        fl = rnd.gauss(flipper, 6)
        mass = 50 * (fl - 200) + 4200 + (400 if sex == "MALE" else -300) + extra + rnd.gauss(0, 150)
        cells = [species, island, f"{rnd.gauss(bill, 3):.1f}", f"{fl:.0f}", sex, f"{mass:.0f}"]
        if gaps and i % 37 == 5:
            cells[2] = "NA"
        if gaps and i % 53 == 7:
            cells[4] = ""
        rows.append(",".join(cells))
    path.write_text("\n".join(rows) + "\n")
    return str(path)


def cfg(path, **kw) -> DataConfig:
    return DataConfig(source="csv", path=path, target=kw.pop("target", "body_mass_g"), **kw)


def test_every_missing_cell_is_reported_at_once_with_counts_per_column(tmp_path):
    path = penguins(tmp_path / "p.csv")
    with pytest.raises(DataError) as err:
        load_data(cfg(path))
    message = str(err.value)
    assert "17 bad cell(s)" in message and "'bill_length_mm' 10" in message and "'sex' 7" in message
    assert message.count(": missing value") == 17 and "data.missing" in message
    many = tmp_path / "many.csv"
    many.write_text("a,b,y\n" + "".join(f"{'' if i % 2 else i},x{i % 3},{i}\n" for i in range(60)))
    message = str(pytest.raises(DataError, load_data, cfg(str(many), target="y")).value)
    assert message.count(": missing value") == 20 and "… and 10 more" in message and "'a' 30" in message


def test_text_in_a_number_column_is_listed_not_mistaken_for_categories(tmp_path):
    path = tmp_path / "typos.csv"
    path.write_text("a,y\n" + "".join(f"{'oops' if i in (3, 8) else i},{i % 2}\n" for i in range(20)))
    message = str(pytest.raises(DataError, load_data, cfg(str(path), target="y")).value)
    assert "2 bad cell(s)" in message and "row 4 (line 5), column 'a': 'oops' is not a number" in message


@pytest.mark.parametrize("missing", ["mean", "median", "most_frequent"])
def test_fill_values_come_from_the_train_split_only(tmp_path, missing):
    # Train rows hold 1, 2 or 3; val/test rows hold 1000: any leak moves the fill far from the train values.
    n = 100
    rows = [f"{'' if i % 10 == 0 else (1000 if i >= 60 else 1 + i % 3)},{i % 2}" for i in range(n)]
    path = tmp_path / "leak.csv"
    path.write_text("a,y\n" + "\n".join(rows) + "\n")
    splits = load_data(cfg(str(path), target="y", missing=missing, shuffle=False, val_fraction=0.2,
                           test_fraction=0.2))
    fill = splits.encoder["columns"][0]["fill"]
    assert 1 <= fill <= 3, fill
    assert splits.x_val[0, 0].item() == fill  # row 60 was blank
    assert torch.isfinite(splits.x_train).all() and torch.isfinite(splits.x_test).all()


def test_drop_removes_the_rows_with_gaps_and_says_so(tmp_path):
    path = penguins(tmp_path / "p.csv")
    splits = load_data(cfg(path, missing="drop"))
    assert sum(splits.sizes().values()) == 340 - 17
    assert any("dropped 17 row(s)" in note for note in splits.notes)


def test_text_columns_are_one_hot_with_categories_from_train(tmp_path):
    path = tmp_path / "cats.csv"
    # 'purple' appears only in the last rows (val, unshuffled): it must encode as all zeros, not a new column.
    colours = ["red", "green", "blue"] * 26 + ["purple"] * 22
    path.write_text("colour,size,y\n" + "".join(f"{c},{i},{i % 2}\n" for i, c in enumerate(colours)))
    splits = load_data(cfg(str(path), target="y", shuffle=False, val_fraction=0.22))
    assert splits.feature_names == ["colour=blue", "colour=green", "colour=red", "size"]
    assert splits.x_train[:3, :3].tolist() == [[0, 0, 1], [0, 1, 0], [1, 0, 0]]
    assert splits.x_val[:, :3].abs().sum() == 0 and splits.input_shape == (4,)
    message = str(pytest.raises(DataError, load_data, cfg(str(path), target="y", categorical="error")).value)
    assert "data.categorical" in message and "'colour'" in message and "'-colour'" in message


def test_an_id_column_is_refused_past_the_category_cap(tmp_path):
    path = tmp_path / "ids.csv"
    path.write_text("id,a,y\n" + "".join(f"user{i},{i},{i % 2}\n" for i in range(400)))
    message = str(pytest.raises(DataError, load_data, cfg(str(path), target="y")).value)
    assert "'id'" in message and "distinct" in message and "data.columns: ['-id']" in message
    splits = load_data(cfg(str(path), target="y", columns=["-id"]))
    assert splits.feature_names == ["a"]
    both = str(pytest.raises(DataError, load_data, cfg(str(path), target="y", columns=["a", "-id"])).value)
    assert "not both" in both


def test_a_large_target_is_standardised_on_train_and_reported_in_grams(tmp_path):
    path = penguins(tmp_path / "p.csv")
    splits = load_data(cfg(path, missing="mean", shuffle=False))
    assert splits.y_std is not None and 500 < float(splits.y_std) < 1500 and 3000 < float(splits.y_mean) < 6000
    assert abs(float(splits.y_train.mean())) < 1e-4  # standardised with the train split's own statistics
    grams = splits.unscale_y(splits.y_val)
    raw = load_data(cfg(path, missing="mean", shuffle=False, standardize_target="never"))
    assert torch.allclose(grams, raw.y_val, atol=1e-2)
    assert any("ill-conditioned" in note for note in raw.notes)
    small = load_data(DataConfig(source="line"))
    assert small.y_std is None  # auto leaves a target near unit scale alone (the line tutorial's weights)


def test_penguins_train_to_a_good_r2_with_metrics_in_the_data_units(tmp_path):
    path = penguins(tmp_path / "p.csv")
    config = {"name": "penguins", "data": {"source": "csv", "path": path, "target": "body_mass_g",
                                           "missing": "median", "standardize": True},
              "model": {"layers": [32]}, "train": {"epochs": 40, "batch_size": 16, "lr": 0.01},
              "device": {"device": "cpu"}}
    host = InProcessHost(str(tmp_path / "runs"))
    try:
        events, done = run_to_end(host, config)
        assert done is not None and done.state == p.FINISHED, events[-3:]
        val = done.summary["val"]
        assert val["r2"] > 0.7 and 50 < val["mae"] < 500, val  # grams, not standard deviations
        never = dict(config, data={**config["data"], "standardize_target": "never"})
        _, worse = run_to_end(host, never)
        assert worse.summary["val"]["r2"] < val["r2"]
    finally:
        host.close()


def test_the_preview_summarises_each_column_also_when_the_data_cannot_load(tmp_path):
    from torchtui.engine.run.requests import preview_data

    path = penguins(tmp_path / "p.csv")
    config = {"data": {"source": "csv", "path": path, "target": "body_mass_g"}}
    reply = preview_data(p.PreviewData(config, request_id=1))
    assert "17 bad cell(s)" in reply.error
    assert "bill_length_mm: number, 10 missing" in "\n".join(reply.columns)
    assert any(line.startswith("species: text") and "3 distinct" in line for line in reply.columns)
    assert any(line.startswith("body_mass_g (target): number") for line in reply.columns)
    fixed = preview_data(p.PreviewData({"data": {**config["data"], "missing": "mean"}}, request_id=2))
    assert not fixed.error and fixed.task == "regression" and len(fixed.columns) == 6


# --- read through Arrow, checked against pandas' reader and scikit-learn's transformers (issue 30) ---------------


def messy(path, n=3000, seed=1) -> str:
    """Numbers with gaps written every way people write them, spaces around cells, a text column with gaps."""
    rnd = random.Random(seed)
    gaps = ["", "NA", " n/a", "?", "null ", "NaN"]
    rows = ["a,b,colour,c,y"]
    for i in range(n):
        a = f"{rnd.gauss(3, 2):.4f}" if rnd.random() > 0.05 else rnd.choice(gaps)
        b = f" {rnd.randint(-50, 50)} " if rnd.random() > 0.1 else rnd.choice(gaps)
        colour = rnd.choices(["red", "green", "blue", " teal"], weights=[6, 3, 2, 1])[0] if rnd.random() > 0.08 \
            else rnd.choice(gaps)
        c = f"{rnd.uniform(0, 1e4):.2e}"
        rows.append(f"{a},{b},{colour},{c},{i % 3}")
    path.write_text("\n".join(rows) + "\n")
    return str(path)


@pytest.mark.parametrize("missing", ["mean", "median", "most_frequent"])
def test_features_match_pandas_read_csv_and_sklearn_imputer_and_one_hot(tmp_path, missing):
    pd = pytest.importorskip("pandas")
    from sklearn.impute import SimpleImputer
    from sklearn.preprocessing import OneHotEncoder

    from torchtui.engine.data.sources.csvfile import read_csv

    path = messy(tmp_path / "messy.csv")
    x, y, task, _, features = read_csv(DataConfig(source="csv", path=path, target="y", missing=missing))
    frame = pd.read_csv(path, dtype=str, keep_default_na=False)  # every cell as its text, then gaps → NaN
    frame = frame.apply(lambda col: col.str.strip().mask(col.str.strip().str.lower().isin(MISSING_TEXT)))
    numbers = ["a", "b", "c"]
    want = SimpleImputer(strategy=missing).fit_transform(frame[numbers].apply(pd.to_numeric))
    colours = SimpleImputer(strategy="most_frequent").fit_transform(frame[["colour"]].astype(object))
    hot = OneHotEncoder(sparse_output=False).fit(colours)
    assert features == ["a", "b", "colour=blue", "colour=green", "colour=red", "colour=teal", "c"]
    assert list(hot.categories_[0]) == ["blue", "green", "red", "teal"]
    expected = np.column_stack([want[:, :2], hot.transform(colours), want[:, 2]]).astype(np.float32)
    assert np.allclose(x.numpy(), expected, rtol=1e-6, atol=1e-6)
    assert task == "multiclass" and y.tolist() == frame["y"].astype(int).tolist()


def test_text_past_arrows_first_block_is_a_bad_cell_on_its_line(tmp_path, monkeypatch):
    from torchtui.engine.data import tables

    monkeypatch.setattr(tables, "BLOCK_BYTES", 1024)  # Arrow infers types from the first block only
    path = tmp_path / "late.csv"
    rows = [f"{i},{i % 2}" for i in range(600)]
    rows[500] = "oops,0"
    path.write_text("a,y\n" + "\n\n".join(rows) + "\n")  # a blank line between rows: lines are not rows
    message = str(pytest.raises(DataError, load_data, cfg(str(path), target="y")).value)
    assert "1 bad cell(s)" in message and "row 501 (line 1002), column 'a': 'oops' is not a number" in message


def test_blank_rows_quoted_newlines_and_parquet_read_like_the_csv(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    plain = tmp_path / "plain.csv"
    plain.write_text("a,kind,y\n" + "".join(f"{i},{'x' if i % 3 else 'y z'},{i % 2}\n" for i in range(40)))
    odd = tmp_path / "odd.csv"  # the same rows, quoted cells, a row of blank cells among them
    odd.write_text("a,kind,y\n" + "".join(f"{i},{'x' if i % 3 else chr(34) + 'y z' + chr(34)},{i % 2}\n" +
                                          (" , ,\n" if i == 5 else "") for i in range(40)))
    table = tmp_path / "t.parquet"
    pq.write_table(pa.table({"a": list(range(40)), "kind": ["x" if i % 3 else "y z" for i in range(40)],
                             "y": [i % 2 for i in range(40)]}), table)
    reference = load_data(cfg(str(plain), target="y"))
    for other in (odd, table):
        got = load_data(cfg(str(other), target="y"))
        assert got.feature_names == reference.feature_names == ["a", "kind=x", "kind=y z"]
        assert torch.equal(got.x_train, reference.x_train) and torch.equal(got.y_val, reference.y_val)
    quoted = tmp_path / "quoted.csv"
    quoted.write_text('a,kind,y\n1,"two\nlines",0\n2,x,1\n3,x,0\n4,"two\nlines",1\nzz,x,0\n')
    message = str(pytest.raises(DataError, load_data, cfg(str(quoted), target="y", val_fraction=0)).value)
    assert "row 5 (line 8), column 'a': 'zz' is not a number" in message  # Python's reader took the file
    bad = tmp_path / "bad.parquet"
    pq.write_table(pa.table({"a": ["1", "2", "x", "4"], "y": [0, 1, 0, 1]}), bad)
    message = str(pytest.raises(DataError, load_data, cfg(str(bad), target="y")).value)
    assert "row 3, column 'a': 'x' is not a number" in message
    (tmp_path / "junk.parquet").write_bytes(b"PAR1 not really")
    message = str(pytest.raises(DataError, load_data, cfg(str(tmp_path / "junk.parquet"), target="y")).value)
    assert message.startswith("data.path: cannot read") and "as Parquet" in message


def test_a_big_table_says_how_its_reading_goes_in_the_runs_log(tmp_path, monkeypatch):
    from torchtui.engine.data import tables

    monkeypatch.setattr(tables, "PROGRESS_BYTES", 0)  # every file counts as big here
    monkeypatch.setattr(tables, "PROGRESS_SECONDS", 0.001)
    path = penguins(tmp_path / "p.csv")
    config = {"name": "p", "data": {"source": "csv", "path": path, "target": "body_mass_g", "missing": "mean"},
              "model": {"layers": [8]}, "train": {"epochs": 1}, "device": {"device": "cpu"}}
    host = InProcessHost(str(tmp_path / "runs"))
    try:
        events, done = run_to_end(host, config)
    finally:
        host.close()
    lines = [e.message for e in events
             if isinstance(e, p.Log) and e.message.startswith(("reading p.csv", "read p.csv"))]
    assert done is not None and lines and lines[-1].startswith("read p.csv: 0 MB in") and "MB/s" in lines[-1], lines
    assert all(line.startswith("reading p.csv: ") and " of 0 MB (" in line for line in lines[:-1])
    assert tables.progress_listener.get() is None  # nobody hears a load outside a run


def test_a_big_tables_preview_reads_its_first_rows_only_and_says_so(tmp_path, monkeypatch):
    from torchtui.engine.run import requests

    path = penguins(tmp_path / "p.csv", gaps=False)
    monkeypatch.setattr(requests, "PREVIEW_BYTES", 1000)  # the 13 kB file counts as big
    monkeypatch.setattr(requests, "PREVIEW_ROWS", 50)
    reply = requests.preview_data(p.PreviewData({"data": {"source": "csv", "path": path, "target": "body_mass_g"}},
                                                request_id=1))
    assert not reply.error and sum(reply.sizes.values()) == 50
    assert reply.columns[0].startswith("preview: the first 50 rows of") and "a run reads every row" in reply.columns[0]
    assert len(reply.columns) == 7 and reply.columns[1].startswith("species: text")
    whole = load_data(cfg(path))
    assert sum(whole.sizes().values()) == 340  # a run is not limited by the preview


def test_a_label_only_on_dropped_rows_is_no_class(tmp_path):
    path = tmp_path / "drop.csv"
    path.write_text("a,kind\n" + "".join(f"{i},{'cat' if i % 2 else 'dog'}\n" for i in range(20)) + ",bird\n")
    splits = load_data(cfg(str(path), target="kind", missing="drop"))
    assert splits.class_names == ["cat", "dog"] and sum(splits.sizes().values()) == 20
