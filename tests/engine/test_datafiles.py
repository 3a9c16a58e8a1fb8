"""Reading data from files and code: MNIST-format IDX folders, .pt/.npz tensors, the user's own Datasets."""

from __future__ import annotations

import gzip
import textwrap

import numpy as np
import pytest
import torch

from torchtui.engine.config import DataConfig, from_dict
from torchtui.engine.data.sources.files import read_idx_file
from torchtui.engine.data.splits import load_data
from torchtui.engine.errors import DataError


def write_idx(path, array: np.ndarray, gz: bool = False) -> None:
    """An IDX file as MNIST ships it: magic (0, 0, type, ndim), big-endian int32 dims, big-endian data."""
    codes = {np.dtype("uint8"): 0x08, np.dtype("int32"): 0x0C, np.dtype("float32"): 0x0D}
    header = bytes([0, 0, codes[array.dtype], array.ndim]) + b"".join(
        int(d).to_bytes(4, "big") for d in array.shape)
    raw = header + array.astype(array.dtype.newbyteorder(">")).tobytes()
    (gzip.open if gz else open)(path, "wb").write(raw)


def mnist_folder(folder, n_train=60, n_test=20, side=6, gz=True, classes=10):
    """A tiny MNIST-style folder with MNIST's file names; the label is coded into the image brightness."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    ext = ".gz" if gz else ""
    for part, n in (("train", n_train), ("t10k", n_test)):
        labels = (np.arange(n) % classes).astype(np.uint8)
        images = (rng.integers(0, 20, (n, side, side)) + labels[:, None, None] * 20).astype(np.uint8)
        write_idx(folder / f"{part}-images-idx3-ubyte{ext}", images, gz)
        write_idx(folder / f"{part}-labels-idx1-ubyte{ext}", labels, gz)
    return folder


# --- IDX ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("gz", [True, False])
def test_idx_folder_reads_train_and_test(tmp_path, gz):
    folder = mnist_folder(tmp_path / "mnist", gz=gz)
    splits = load_data(DataConfig(source="idx", path=str(folder), val_fraction=0.25))
    assert splits.input_shape == (1, 6, 6) and splits.task == "multiclass" and splits.n_classes == 10
    assert splits.sizes() == {"train": 45, "val": 15, "test": 20}  # the t10k files are the test split
    assert splits.x_train.dtype == torch.float32 and 0 <= splits.x_train.min() and splits.x_train.max() <= 1


def test_idx_round_trips_values(tmp_path):
    data = np.arange(24, dtype=np.int32).reshape(2, 3, 4)
    write_idx(tmp_path / "a.idx", data)
    assert np.array_equal(read_idx_file(tmp_path / "a.idx"), data)


def test_idx_limit_and_test_fraction_note(tmp_path):
    folder = mnist_folder(tmp_path / "m")
    splits = load_data(DataConfig(source="idx", path=str(folder), limit=10, val_fraction=0.2, test_fraction=0.1))
    assert splits.sizes() == {"train": 8, "val": 2, "test": 10}
    assert any("test_fraction" in note and "ignored" in note for note in splits.notes)


@pytest.mark.parametrize("damage, needle", [
    (lambda f: (f / "train-images-idx3-ubyte.gz").unlink(), "has no train-images-idx3-ubyte"),
    (lambda f: (f / "train-labels-idx1-ubyte.gz").write_bytes(gzip.compress(b"\x00\x00\x08\x01\x00\x00\x00\x05ab")),
     "header promises"),
    (lambda f: (f / "train-labels-idx1-ubyte.gz").write_bytes(gzip.compress(b"PK\x03\x04junk")), "not an IDX file"),
    (lambda f: (f / "train-images-idx3-ubyte.gz").write_bytes(b"not gzip at all"), "cannot read"),
])
def test_broken_idx_folders_name_the_file(tmp_path, damage, needle):
    folder = mnist_folder(tmp_path / "m")
    damage(folder)
    with pytest.raises(DataError, match="^data.path: ") as info:
        load_data(DataConfig(source="idx", path=str(folder)))
    assert needle in str(info.value)


def test_idx_count_mismatch_and_missing_folder(tmp_path):
    folder = mnist_folder(tmp_path / "m")
    write_idx(folder / "train-labels-idx1-ubyte.gz", np.zeros(7, np.uint8), gz=True)
    with pytest.raises(DataError, match="60 images but 'train-labels-idx1-ubyte.gz' 7 labels"):
        load_data(DataConfig(source="idx", path=str(folder)))
    with pytest.raises(DataError, match="no folder"):
        load_data(DataConfig(source="idx", path=str(tmp_path / "nope")))


# --- .pt and .npz ------------------------------------------------------------------------------------


def test_pt_dict_and_tuple_and_npz_load_the_same(tmp_path):
    x = torch.randn(50, 3)
    y = (x[:, 0] > 0).long()
    torch.save({"X": x, "y": y}, tmp_path / "d.pt")
    torch.save((x, y), tmp_path / "t.pt")
    np.savez(tmp_path / "n.npz", x=x.numpy(), labels=y.numpy())
    loaded = [load_data(DataConfig(source="tensors", path=str(tmp_path / f), shuffle=False))
              for f in ("d.pt", "t.pt", "n.npz")]
    for s in loaded:
        assert s.task == "binary" and s.input_shape == (3,) and s.sizes() == {"train": 40, "val": 10, "test": 0}
        assert torch.equal(s.x_train, x[:40]) and torch.equal(s.y_train, y[:40])


def test_tensor_file_labels_are_mapped_and_images_scaled(tmp_path):
    x = torch.randint(0, 256, (30, 5, 5), dtype=torch.uint8)
    y = torch.tensor([3, 7, 9] * 10)
    torch.save({"x": x, "y": y, "x_test": x[:6], "y_test": y[:6]}, tmp_path / "img.pt")
    s = load_data(DataConfig(source="tensors", path=str(tmp_path / "img.pt"), val_fraction=0.2))
    assert s.input_shape == (1, 5, 5) and s.class_names == ["3", "7", "9"] and s.sizes()["test"] == 6
    assert set(s.y_train.tolist()) <= {0, 1, 2} and float(s.x_train.max()) <= 1.0
    assert torch.equal(s.y_test, torch.tensor([0, 1, 2, 0, 1, 2]))


def test_float_targets_are_regression(tmp_path):
    np.savez(tmp_path / "r.npz", X=np.random.rand(20, 2), y=np.random.rand(20))
    s = load_data(DataConfig(source="tensors", path=str(tmp_path / "r.npz")))
    assert s.task == "regression" and s.n_targets == 1 and s.y_train.shape[1] == 1


@pytest.mark.parametrize("content, needle", [
    ({"features": np.zeros((4, 2))}, "needs arrays named X and y (found: features)"),
    ({"x": np.zeros((4, 2)), "y": np.zeros(3)}, "x has 4 samples but y 3"),
    ({"x": np.array([[1.0, np.nan], [0, 0]]), "y": np.array([0, 1])}, "NaN or inf at sample 0"),
    ({"x": np.zeros((4, 8, 8, 3)), "y": np.arange(4)}, "channels-first"),
    ({"x": np.zeros((0, 2)), "y": np.zeros(0)}, "holds no samples"),
    ({"x": np.zeros((4, 2)), "y": np.ones(4, dtype=np.int64)}, "one class only"),
    ({"x": np.array(["a", "b"]), "y": np.array([0, 1])}, "not numeric"),
    ({"x": np.zeros((4, 2)), "y": np.array([0.0, np.inf, 1, 2])}, "NaN or inf at sample 1"),
    ({"x": np.zeros((4, 2)), "y": np.arange(4), "x_test": np.zeros((2, 2))}, "only one of x_test and y_test"),
])
def test_bad_npz_files_are_clear(tmp_path, content, needle):
    np.savez(tmp_path / "bad.npz", **content)
    with pytest.raises(DataError, match="^data.path: ") as info:
        load_data(DataConfig(source="tensors", path=str(tmp_path / "bad.npz")))
    assert needle in str(info.value)


class Sneaky:
    """Not a tensor: a weights-only load must refuse to unpickle it."""


@pytest.mark.parametrize("write, needle", [
    (lambda p: torch.save({"x": Sneaky(), "y": torch.zeros(2)}, p), "cannot load"),
    (lambda p: p.write_bytes(b"\x00garbage"), "cannot load"),
    (lambda p: torch.save([1, 2, 3], p), "must hold a dict with X and y"),
    (lambda p: p.write_bytes(b""), "cannot load"),
])
def test_bad_pt_files_never_unpickle(tmp_path, write, needle):
    path = tmp_path / "bad.pt"
    write(path)
    with pytest.raises(DataError, match=needle):
        load_data(DataConfig(source="tensors", path=str(path)))


# --- the user's own code -------------------------------------------------------------------------------


def code_file(tmp_path, body: str, name: str = "mydata.py"):
    path = tmp_path / name
    path.write_text(textwrap.dedent(body))
    return path


DATASETS = """
    import torch
    from torch.utils.data import Dataset, TensorDataset

    class Points(Dataset):
        def __init__(self, n, shift):
            g = torch.Generator().manual_seed(n)
            self.x = torch.randn(n, 2, generator=g) + shift
            self.y = (self.x.sum(1) > 2 * shift).long() * 5 + 5   # labels 5 and 10
        def __len__(self):
            return len(self.x)
        def __getitem__(self, i):
            return self.x[i], int(self.y[i])

    def make(n=100, shift=0.0):
        return Points(n, shift), Points(n // 4, shift), Points(n // 5, shift)

    def pairs():
        x = torch.randn(40, 3)
        return (x, (x[:, 0] > 0).long()), (x[:8], (x[:8, 0] > 0).long())
"""


@pytest.mark.parametrize("stream", [False, True])
def test_code_datasets_in_memory_or_streamed(tmp_path, stream):
    path = code_file(tmp_path, DATASETS)
    cfg = DataConfig(source="code", path=f"{path}:make", kwargs={"n": 80, "shift": 0.5}, stream=stream)
    s = load_data(cfg)
    assert s.streamed is stream and s.task == "binary" and s.class_names == ["5", "10"]
    assert s.sizes() == {"train": 80, "val": 20, "test": 16} and s.input_shape == (2,)
    xb, yb = next(iter(s.train.chunks(1000)))
    assert xb.shape == (80, 2) and set(yb.tolist()) <= {0, 1}
    order = torch.arange(80)
    batches = list(s.train_batches(order, 32, start_batch=1))
    assert [len(b[0]) for b in batches] == [32, 16]


def test_code_pairs_and_missing_test_are_split(tmp_path):
    path = code_file(tmp_path, DATASETS)
    s = load_data(DataConfig(source="code", path=f"{path}:pairs", test_fraction=0.25))
    assert s.sizes() == {"train": 30, "val": 8, "test": 10}


def test_code_streamed_standardises_with_train_statistics(tmp_path):
    path = code_file(tmp_path, DATASETS)
    s = load_data(DataConfig(source="code", path=f"{path}:make", kwargs={"n": 400, "shift": 3.0}, stream=True,
                             standardize=True))
    xb, _ = next(iter(s.train.chunks(1000)))
    assert xb.mean(0).abs().max() < 1e-4 and (xb.std(0, unbiased=False) - 1).abs().max() < 1e-4


@pytest.mark.parametrize("body, ref, needle", [
    (DATASETS, "{path}:nothing", "has no 'nothing' (it defines: Points, make, pairs)"),
    (DATASETS, "{dir}/missing.py:make", "no such file"),
    ("def make():\n    return 1 / 0\n", "{path}:make", "raised ZeroDivisionError at {path}:2"),
    ("def make(:\n", "{path}:make", "{path}:1: invalid syntax"),
    ("import no_such_module_here\n", "{path}:make", "importing"),
    ("def make():\n    return [1, 2, 3, 4]\n", "{path}:make", "must return (train, val) or (train, val, test)"),
    ("def make():\n    return 5, 6\n", "{path}:make", "returned a int as its train part"),
])
def test_code_errors_name_file_and_line(tmp_path, body, ref, needle):
    path = code_file(tmp_path, body)
    ref = ref.format(path=path, dir=tmp_path)
    with pytest.raises(DataError) as info:
        load_data(DataConfig(source="code", path=ref))
    assert str(info.value).startswith("data.path: ") and needle.format(path=path) in str(info.value)


def test_code_ref_must_name_a_function():
    with pytest.raises(Exception, match="expected path/to/file.py:function"):
        from_dict({"data": {"source": "code", "path": "data.py"}})


# --- bundled and torchvision ---------------------------------------------------------------------------


def test_bundled_without_scikit_learn_says_how_to_install(monkeypatch):
    monkeypatch.setitem(__import__("sys").modules, "sklearn", None)
    with pytest.raises(DataError, match=r"pip install 'torchtui\[datasets\]'"):
        load_data(DataConfig(source="iris"))


def test_digits_are_one_channel_images():
    pytest.importorskip("sklearn")
    s = load_data(DataConfig(source="digits", val_fraction=0.2, test_fraction=0.1))
    assert s.input_shape == (1, 8, 8) and s.n_classes == 10 and sum(s.sizes().values()) == 1797
    assert float(s.x_train.max()) == 1.0


def test_torchvision_missing_or_broken_is_one_clear_line(monkeypatch, tmp_path):
    monkeypatch.setitem(__import__("sys").modules, "torchvision", None)
    with pytest.raises(DataError, match="torchvision is not usable here .*install the torchvision build"):
        load_data(DataConfig(source="torchvision", dataset="MNIST", path=str(tmp_path)))


def test_torchvision_image_folder(tmp_path):
    pytest.importorskip("torchvision")
    pil = pytest.importorskip("PIL.Image")
    for k, colour in enumerate(("red", "blue")):
        (tmp_path / "imgs" / f"class{k}").mkdir(parents=True)
        for i in range(6):
            pil.new("RGB", (10 + i, 12), colour).save(tmp_path / "imgs" / f"class{k}" / f"{i}.png")
    s = load_data(DataConfig(source="torchvision", dataset="ImageFolder", path=str(tmp_path / "imgs"), image_size=8))
    assert s.input_shape == (3, 8, 8) and s.class_names == ["class0", "class1"] and sum(s.sizes().values()) == 12


def test_torchvision_mnist_from_local_files_and_never_downloads(tmp_path):
    pytest.importorskip("torchvision")
    mnist_folder(tmp_path / "root" / "MNIST" / "raw", gz=False, side=28)
    s = load_data(DataConfig(source="torchvision", dataset="MNIST", path=str(tmp_path / "root")))
    assert s.input_shape == (1, 28, 28) and s.sizes() == {"train": 48, "val": 12, "test": 20}
    assert s.class_names[0].startswith("0")  # torchvision's names, e.g. "0 - zero"
    with pytest.raises(DataError, match="FashionMNIST not found under .*never downloads"):
        load_data(DataConfig(source="torchvision", dataset="FashionMNIST", path=str(tmp_path / "root")))
