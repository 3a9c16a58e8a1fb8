"""Tests for engine/data.py: generators, CSV loading, splits, standardisation and batching."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from torchtui.engine.config import SOURCE_TASKS, SYNTHETIC_SOURCES, DataConfig
from torchtui.engine.data.batches import epoch_permutation, iter_batches, num_batches
from torchtui.engine.data.sources.csvfile import read_csv
from torchtui.engine.data.sources.synthetic import generate
from torchtui.engine.data.splits import Splits, load_data
from torchtui.engine.errors import DataError

SYNTHETIC = sorted(SYNTHETIC_SOURCES)


def line_config(**kw) -> DataConfig:
    # The `line` preset: 50 points, no noise, no shuffle, 20 % val.
    return DataConfig(source="line", noise=0.0, shuffle=False, val_fraction=0.2, **kw)


# --- synthetic sources ---------------------------------------------------------------------------------


@pytest.mark.parametrize("source", SYNTHETIC)
def test_generate_shapes_and_dtypes(source):
    cfg = DataConfig(source=source, n_samples=60, classes=4, features=3, seq_len=5)
    x, y, task, class_names = generate(cfg)
    assert task == SOURCE_TASKS[source]
    assert x.dtype == torch.float32 and x.ndim == (3 if source == "sine" else 2)
    n = 50 if source == "line" else 60
    assert len(x) == len(y) == n
    expected_shape = {"line": (1,), "sine": (5, 1), "blobs": (3,)}.get(source, (2,))
    assert x.shape[1:] == expected_shape
    assert torch.isfinite(x).all()
    if task == "regression":
        assert y.dtype == torch.float32 and y.shape == (n, 1)
        assert class_names == []
    else:
        k = 2 if task == "binary" else 4
        assert y.dtype == torch.int64 and y.shape == (n,)
        assert class_names == [str(i) for i in range(k)]
        counts = torch.bincount(y, minlength=k).tolist()
        # xor labels come from uniform points; the others split the samples evenly between classes.
        assert min(counts) > 0 if source == "xor" else counts == [n // k] * k


@pytest.mark.parametrize("source", SYNTHETIC)
def test_generate_is_deterministic_by_seed(source):
    def make(seed):
        return generate(DataConfig(source=source, n_samples=40, seed=seed, noise=0.1))

    x1, y1, *_ = make(1)
    x2, y2, *_ = make(1)
    x3, y3, *_ = make(2)
    assert torch.equal(x1, x2) and torch.equal(y1, y2)
    assert not (torch.equal(x3, x1) and torch.equal(y3, y1))


def test_generate_leaves_global_rng_alone():
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    generate(DataConfig(source="moons", n_samples=20))
    assert torch.equal(torch.rand(3), expected)


def test_moons_and_circles_without_noise_follow_their_shapes():
    x, y, *_ = generate(DataConfig(source="circles", n_samples=40, noise=0.0, factor=0.5))
    radius = x.norm(dim=1)
    assert torch.allclose(radius[y == 0], torch.ones(20), atol=1e-5)
    assert torch.allclose(radius[y == 1], torch.full((20,), 0.5), atol=1e-5)
    x, y, *_ = generate(DataConfig(source="moons", n_samples=40, noise=0.0))
    assert torch.allclose(x[y == 0].norm(dim=1), torch.ones(20), atol=1e-5)


def test_xor_labels_are_quadrants_without_noise():
    x, y, *_ = generate(DataConfig(source="xor", n_samples=200, noise=0.0))
    assert x.abs().max() <= 1
    assert torch.equal(y, (x[:, 0] * x[:, 1] > 0).long())


def test_blobs_centres_lie_in_range():
    x, y, *_ = generate(DataConfig(source="blobs", n_samples=300, classes=3, features=4, noise=0.0))
    for k in range(3):
        centre = x[y == k].mean(0)
        assert centre.abs().max() < 10.5


def test_sine_targets_are_the_next_value():
    x, y, *_ = generate(DataConfig(source="sine", n_samples=30, seq_len=6, noise=0.05))
    x = x.squeeze(-1)  # (N, steps, 1 feature)
    # Window i+1 is window i shifted by one, ending with window i's target.
    assert torch.equal(x[1:, :-1], x[:-1, 1:])
    assert torch.equal(x[1:, -1], y[:-1, 0])


def test_generate_rejects_csv_and_empty_line():
    with pytest.raises(DataError, match="data.source"):
        generate(DataConfig(source="csv", path="x.csv"))
    with pytest.raises(DataError, match="data.step"):
        generate(DataConfig(source="line", start=0.0, end=1.0, step=-0.1))


# --- splits and standardisation ------------------------------------------------------------------------


def test_line_without_shuffle_keeps_order():
    splits = load_data(line_config())
    assert splits.sizes() == {"train": 40, "val": 10, "test": 0}
    x = torch.arange(0.0, 1.0, 0.02, dtype=torch.float32).unsqueeze(1)
    assert torch.equal(splits.x_train, x[:40])
    assert torch.equal(splits.x_val, x[40:])
    assert torch.equal(splits.y_train, 0.7 * x[:40] + 0.3)
    assert torch.equal(splits.y_val, 0.7 * x[40:] + 0.3)
    assert splits.task == "regression" and splits.n_classes == 0 and splits.n_targets == 1
    assert splits.n_features == 1 and splits.feature_names == ["x"]
    assert splits.mean is None and splits.std is None
    assert splits.x_test.shape == (0, 1) and splits.y_test.shape == (0, 1)


@pytest.mark.parametrize("n, val, test", [(100, 0.2, 0.1), (7, 0.3, 0.0), (10, 0.0, 0.0), (33, 0.15, 0.15)])
def test_split_sizes_and_every_sample_used_once(n, val, test):
    cfg = DataConfig(source="xor", n_samples=n, val_fraction=val, test_fraction=test, seed=3)
    splits = load_data(cfg)
    n_val, n_test = round(n * val), round(n * test)
    assert splits.sizes() == {"train": n - n_val - n_test, "val": n_val, "test": n_test}
    x, *_ = generate(cfg)
    together = torch.cat([splits.x_train, splits.x_val, splits.x_test])
    assert sorted(map(tuple, together.tolist())) == sorted(map(tuple, x.tolist()))


def test_shuffle_depends_on_seed_only():
    a = load_data(DataConfig(source="line", seed=1))
    b = load_data(DataConfig(source="line", seed=1))
    c = load_data(DataConfig(source="line", seed=2))
    assert torch.equal(a.x_train, b.x_train)
    assert not torch.equal(a.x_train, c.x_train)
    # The line itself does not depend on the seed; only the split does.
    assert not torch.equal(a.x_train, load_data(line_config()).x_train)


def test_split_without_train_samples_is_an_error():
    with pytest.raises(DataError, match="data.val_fraction"):
        load_data(DataConfig(source="moons", n_samples=2, val_fraction=0.5, test_fraction=0.4))


def test_standardise_uses_train_statistics_only():
    cfg = DataConfig(source="blobs", n_samples=200, features=3, standardize=True, test_fraction=0.2)
    splits = load_data(cfg)
    raw = load_data(DataConfig(**{**cfg.__dict__, "standardize": False}))
    assert torch.allclose(splits.x_train.mean(0), torch.zeros(3), atol=1e-5)
    assert torch.allclose(splits.x_train.std(0, unbiased=False), torch.ones(3), atol=1e-4)
    assert torch.allclose(splits.mean, raw.x_train.mean(0))
    for name in ("x_val", "x_test"):
        expected = (getattr(raw, name) - splits.mean) / splits.std
        assert torch.allclose(getattr(splits, name), expected)
    # Val has its own statistics, so with train's it is not exactly centred.
    assert not torch.allclose(splits.x_val.mean(0), torch.zeros(3), atol=1e-6)


def test_standardise_leaves_constant_features_finite(tmp_path):
    path = tmp_path / "const.csv"
    path.write_text("a,b,y\n" + "".join(f"1,{i},{i * 0.5}\n" for i in range(10)))
    splits = load_data(DataConfig(source="csv", path=str(path), standardize=True))
    assert torch.isfinite(splits.x_val).all() and torch.isfinite(splits.x_train).all()


def test_splits_to_moves_every_tensor():
    splits = load_data(DataConfig(source="moons", n_samples=20, standardize=True))
    moved = splits.to("cpu")
    assert isinstance(moved, Splits) and moved.sizes() == splits.sizes()
    assert torch.equal(moved.x_train, splits.x_train) and moved.mean is not None
    assert moved.x_val.device.type == "cpu"


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_splits_to_cuda():
    moved = load_data(DataConfig(source="moons", n_samples=20, standardize=True)).to("cuda")
    tensors = [moved.x_train, moved.y_train, moved.x_val, moved.y_val, moved.x_test, moved.y_test,
               moved.mean, moved.std]
    assert all(t.is_cuda for t in tensors)


# --- batches -------------------------------------------------------------------------------------------


def test_epoch_permutation_is_deterministic_per_seed_and_epoch():
    a = epoch_permutation(50, seed=0, epoch=0, device="cpu")
    assert torch.equal(a, epoch_permutation(50, 0, 0, "cpu"))
    assert not torch.equal(a, epoch_permutation(50, 0, 1, "cpu"))
    assert not torch.equal(a, epoch_permutation(50, 1, 0, "cpu"))
    assert sorted(a.tolist()) == list(range(50)) and a.dtype == torch.int64


def test_epoch_permutation_leaves_global_rng_alone():
    torch.manual_seed(5)
    expected = torch.rand(2)
    torch.manual_seed(5)
    epoch_permutation(10, 0, 3, "cpu")
    assert torch.equal(torch.rand(2), expected)


@settings(max_examples=60, deadline=None)
@given(n=st.integers(0, 40), batch_size=st.integers(0, 50), seed=st.integers(0, 2**31))
def test_iter_batches_covers_every_index_once(n, batch_size, seed):
    x = torch.arange(n, dtype=torch.float32).unsqueeze(1)
    y = torch.arange(n)
    perm = epoch_permutation(n, seed, 0, "cpu")
    batches = list(iter_batches(x, y, perm, batch_size))
    assert len(batches) == num_batches(n, batch_size)
    seen = torch.cat([yb for _, yb in batches]) if batches else torch.empty(0, dtype=torch.long)
    assert torch.equal(seen, perm)
    for xb, yb in batches:
        assert torch.equal(xb[:, 0].long(), yb)
    if batches and batch_size:
        assert all(len(yb) == batch_size for _, yb in batches[:-1])
        assert 0 < len(batches[-1][1]) <= batch_size


def test_iter_batches_whole_split_and_last_partial_batch():
    x, y = torch.randn(10, 2), torch.arange(10)
    perm = torch.arange(10)
    (only,) = list(iter_batches(x, y, perm, 0))
    assert torch.equal(only[1], y) and num_batches(10, 0) == 1
    sizes = [len(yb) for _, yb in iter_batches(x, y, perm, 4)]
    assert sizes == [4, 4, 2] and num_batches(10, 4) == 3
    assert num_batches(0, 4) == 0 and num_batches(0, 0) == 0


def test_iter_batches_start_batch_resumes_mid_epoch():
    x, y = torch.randn(10, 2), torch.arange(10)
    perm = epoch_permutation(10, 7, 2, "cpu")
    full = list(iter_batches(x, y, perm, 3))
    resumed = list(iter_batches(x, y, perm, 3, start_batch=2))
    assert len(resumed) == 2
    for (_, a), (_, b) in zip(full[2:], resumed):
        assert torch.equal(a, b)
    assert list(iter_batches(x, y, perm, 3, start_batch=4)) == []
    assert list(iter_batches(x, y, perm, 0, start_batch=1)) == []


# --- CSV -----------------------------------------------------------------------------------------------


def write(tmp_path, text: str, name: str = "data.csv") -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def csv_config(path: str, **kw) -> DataConfig:
    return DataConfig(source="csv", path=path, **kw)


def test_csv_string_labels_are_classes_in_sorted_order(tmp_path):
    labels = ["cat", "dog", "ant", "dog", "cat", "ant"]
    rows = "".join(f"{i},{i * 2},{label}\n" for i, label in enumerate(labels))
    path = write(tmp_path, "a,b,kind\n" + rows)
    x, y, task, class_names, features = read_csv(csv_config(path))
    assert task == "multiclass" and class_names == ["ant", "cat", "dog"]
    assert y.tolist() == [1, 2, 0, 2, 1, 0] and y.dtype == torch.int64
    assert features == ["a", "b"] and x.shape == (6, 2) and x.dtype == torch.float32
    assert x[:, 1].tolist() == [0, 2, 4, 6, 8, 10]


def test_csv_small_integer_labels_are_classes(tmp_path):
    path = write(tmp_path, "x,label\n" + "".join(f"{i / 10},{i % 2}\n" for i in range(12)))
    x, y, task, class_names, _ = read_csv(csv_config(path))
    assert task == "binary" and class_names == ["0", "1"] and y.dtype == torch.int64
    splits = load_data(csv_config(path, val_fraction=0.25))
    assert splits.n_classes == 2 and splits.n_targets == 1 and splits.sizes()["val"] == 3


def test_csv_integer_labels_map_to_indices(tmp_path):
    path = write(tmp_path, "x,label\n" + "".join(f"{i},{[3, 7, 5][i % 3]}\n" for i in range(9)))
    _, y, task, class_names, _ = read_csv(csv_config(path))
    assert task == "multiclass" and class_names == ["3", "5", "7"]
    assert y.tolist() == [0, 2, 1] * 3


def test_csv_float_and_many_integer_targets_are_regression(tmp_path):
    path = write(tmp_path, "x,price\n" + "".join(f"{i},{i * 1.5 + 0.25}\n" for i in range(8)))
    _, y, task, class_names, _ = read_csv(csv_config(path))
    assert task == "regression" and class_names == [] and y.shape == (8, 1) and y.dtype == torch.float32
    # Integers, but as many distinct values as rows: a count, not a label.
    path = write(tmp_path, "x,count\n" + "".join(f"{i},{i * 3}\n" for i in range(8)), "ints.csv")
    assert read_csv(csv_config(path))[2] == "regression"


def test_csv_target_and_columns_can_be_chosen(tmp_path):
    path = write(tmp_path, "id,y,a,b\n1,0.5,2,3\n2,0.7,4,5\n3,0.9,6,7\n")
    x, y, _, _, features = read_csv(csv_config(path, target="y", columns=["b", "a"]))
    assert features == ["b", "a"] and x[0].tolist() == [3, 2]
    assert y[:, 0].tolist() == pytest.approx([0.5, 0.7, 0.9])
    _, _, _, _, features = read_csv(csv_config(path, target="y"))
    assert features == ["id", "a", "b"]


def test_csv_tolerates_bom_blank_lines_and_spaces(tmp_path):
    path = tmp_path / "bom.csv"
    path.write_text("\ufeff a , y \n1, 2\n\n3, 4\n", encoding="utf-8")
    x, y, _, _, features = read_csv(csv_config(str(path)))
    assert features == ["a"] and x[:, 0].tolist() == [1, 3]


@pytest.mark.parametrize("text, kw, needles", [
    (None, {}, ["data.path", "no such file"]),
    ("", {}, ["data.path", "empty"]),
    ("a,b,y\n", {}, ["data.path", "no data rows"]),
    ("a,b,y\n1,2,3\n4,,6\n", {}, ["row 2", "line 3", "'b'", "missing"]),
    ("a,b,y\n1,2,3\n4,5,6\nx,5,6\n", {}, ["row 3", "line 4", "'a'", "'x' is not a number"]),
    ("a,b,y\n1,2,3\n4,5,NA\n", {}, ["row 2", "'y'", "missing target"]),
    ("a,b,y\n1,2\n", {}, ["line 2", "2 fields"]),
    ("a,b,y\n1,2,3\n", {"target": "z"}, ["data.target", "'z'", "columns: a, b, y"]),
    ("a,b,y\n1,2,3\n", {"columns": ["a", "bb"]}, ["data.columns", "'bb'", "did you mean 'b'", "a, b, y"]),
    ("a,b,y\n1,2,3\n", {"columns": ["a", "y"]}, ["data.columns", "'y' is the target"]),
    ("a,a,y\n1,2,3\n", {}, ["data.path", "repeats", "'a'"]),
    ("a,y\n1,cat\n2,cat\n", {}, ["data.target", "one label"]),
    ("a,y\n1,1.5\n2,2.5\n3,oops\n4,3.5\n", {}, ["row 3", "'y'", "'oops'"]),
])
def test_bad_csv_raises_data_error_naming_the_place(tmp_path, text, kw, needles):
    path = str(tmp_path / "missing.csv") if text is None else write(tmp_path, text)
    with pytest.raises(DataError) as err:
        load_data(csv_config(path, **kw))
    message = str(err.value)
    for needle in needles:
        assert needle in message, (needle, message)


# --- augmentation ---------------------------------------------------------------------------------------


def test_random_flip_flips_about_half_the_images():
    from torchtui.engine.data.augment import random_flip

    torch.manual_seed(0)
    x = torch.arange(2 * 3 * 4, dtype=torch.float32).reshape(1, 2, 3, 4).repeat(200, 1, 1, 1)
    out = random_flip(x)
    flipped = (out == x.flip(-1)).flatten(1).all(1)
    assert ((out == x).flatten(1).all(1) | flipped).all() and 60 < int(flipped.sum()) < 140


def test_random_crop_shifts_within_the_padding():
    from torchtui.engine.data.augment import random_crop

    torch.manual_seed(0)
    x = torch.zeros(50, 1, 6, 6)
    x[:, :, 2, 3] = 1.0  # one bright pixel per image
    out = random_crop(x, 2)
    assert out.shape == x.shape
    where = out[:, 0].flatten(1).argmax(1)
    rows, cols = where // 6, where % 6
    assert ((rows - 2).abs() <= 2).all() and ((cols - 3).abs() <= 2).all() and len(set(where.tolist())) > 5
    assert torch.equal(random_crop(x, 0), x)


def test_augmentation_applies_to_training_batches_only(tmp_path):
    torch.save({"x": torch.rand(40, 1, 5, 5), "y": torch.arange(40) % 2}, tmp_path / "imgs.pt")
    s = load_data(DataConfig(source="tensors", path=str(tmp_path / "imgs.pt"), flip=True, crop=1))
    order = torch.arange(len(s.train))
    xb, _ = next(s.train_batches(order, 64))
    assert not torch.equal(xb, s.x_train)  # augmented …
    assert torch.equal(next(s.val.chunks(64))[0], s.x_val)  # … but never the evaluation data
