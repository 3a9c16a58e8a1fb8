"""Arrays larger than memory (issue 30): .npy folders and uncompressed .npz members memory-mapped, read a batch
at a time through a DataLoader, the process's resident memory kept flat, the data wait measured."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from torchtui.engine import protocol as p
from torchtui.engine.config import DataConfig
from torchtui.engine.data import datasets, mapped
from torchtui.engine.data.splits import load_data
from torchtui.engine.errors import DataError
from torchtui.engine.host import InProcessHost

from .helpers import run_to_end


def arrays(n=600, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, 6)).astype(np.float32) * 4 + 2
    y = np.array([3, 5, 7])[(x[:, 0] > 2).astype(int) + (x[:, 1] > 2)]  # labels that are not 0..k-1
    return x, y


def test_a_streamed_npy_folder_trains_exactly_like_the_same_arrays_in_memory(tmp_path):
    x, y = arrays()
    folder = tmp_path / "arrays"
    folder.mkdir()
    np.save(folder / "X.npy", x)
    np.save(folder / "y.npy", y)
    np.savez_compressed(tmp_path / "same.npz", X=x, y=y)  # compressed: read into memory, never mapped
    base = {"name": "m", "model": {"layers": [16]}, "device": {"device": "cpu"},
            "train": {"epochs": 3, "batch_size": 32, "lr": 0.01, "seed": 3}}
    runs = {}
    host = InProcessHost(str(tmp_path / "runs"))
    try:
        for name, data in (("memory", {"path": str(tmp_path / "same.npz")}),
                           ("mapped", {"path": str(folder), "stream": True})):
            config = {**base, "data": {"source": "tensors", "standardize": True, **data}}
            events, done = run_to_end(host, config)
            assert done is not None and done.state == p.FINISHED, events[-3:]
            stats = [e for e in events if isinstance(e, p.StepStats)]
            runs[name] = ([v for e in stats for v in e.loss], [e.data_wait for e in stats], done.summary)
    finally:
        host.close()
    (loss_a, wait_a, summary_a), (loss_b, wait_b, summary_b) = runs["memory"], runs["mapped"]
    assert len(loss_a) == len(loss_b) == 3 * 15  # 480 train rows in batches of 32
    assert np.allclose(loss_a, loss_b, rtol=1e-5, atol=1e-6)  # the same split, order, standardiser and labels
    assert summary_a["val"]["accuracy"] == pytest.approx(summary_b["val"]["accuracy"])
    assert all(w is None for w in wait_a) and all(w is not None and 0 <= w <= 1 for w in wait_b)


def test_an_npz_past_the_memory_budget_is_mapped_and_streams(tmp_path, monkeypatch):
    x, y = arrays(200)
    np.savez(tmp_path / "big.npz", X=x, y=y, X_val=x[:40], y_val=y[:40])  # np.savez stores members uncompressed
    held = load_data(DataConfig(source="tensors", path=str(tmp_path / "big.npz"), shuffle=False))
    assert not held.streamed
    monkeypatch.setattr(datasets, "MAX_IN_MEMORY_BYTES", 1000)
    streamed = load_data(DataConfig(source="tensors", path=str(tmp_path / "big.npz"), shuffle=False))
    assert streamed.streamed and streamed.sizes() == held.sizes() == {"train": 200, "val": 40, "test": 0}
    assert isinstance(streamed.train.dataset.dataset, mapped.MappedRows)
    xb, yb = next(streamed.train.chunks(1000))
    assert torch.equal(xb, held.x_train) and torch.equal(yb, held.y_train)
    assert streamed.class_names == held.class_names == ["3", "5", "7"]


def test_mapped_data_that_is_wrong_says_where(tmp_path, monkeypatch):
    x, y = arrays(50)
    x[37, 2] = np.nan
    folder = tmp_path / "f"
    folder.mkdir()
    np.save(folder / "x.npy", x)
    np.save(folder / "y.npy", y)
    splits = load_data(DataConfig(source="tensors", path=str(folder), stream=True, val_fraction=0, shuffle=False))
    with pytest.raises(DataError) as err:
        list(splits.train.chunks(16))
    assert "NaN or inf at sample 37" in str(err.value)  # the batch read that holds it says so
    np.save(folder / "y.npy", y[:10])
    message = str(pytest.raises(DataError, load_data, DataConfig(source="tensors", path=str(folder))).value)
    assert "x has 50 samples but y 10" in message
    message = str(pytest.raises(DataError, load_data, DataConfig(source="tensors",
                                                                  path=str(folder / "x.npy"))).value)
    assert "holds one array" in message and "folder" in message
    empty = tmp_path / "empty"
    empty.mkdir()
    message = str(pytest.raises(DataError, load_data, DataConfig(source="tensors", path=str(empty))).value)
    assert "without .npy files" in message


def rss_kib() -> int:
    with open("/proc/self/status") as handle:
        return next(int(line.split()[1]) for line in handle if line.startswith("VmRSS:"))


def test_reading_every_row_of_a_file_keeps_resident_memory_flat(tmp_path):
    rows = np.random.default_rng(0).standard_normal((24_000, 1024)).astype(np.float32)  # 94 MiB
    np.save(tmp_path / "x.npy", rows)
    data = mapped.MappedRows(mapped.npy(tmp_path / "x.npy"), np.arange(24_000))
    order = np.random.default_rng(1).permutation(24_000)
    before, peak = rss_kib(), 0
    for start in range(0, 24_000, 256):
        xb, yb = data.__getitems__(order[start:start + 256])
        peak = max(peak, rss_kib() - before)
        assert torch.equal(xb, torch.from_numpy(rows[order[start:start + 256]]))  # every batch, in the sampler's order
    assert torch.equal(yb, torch.from_numpy(order[start:]))
    assert peak < 16 * 1024, peak  # a batch's worth (1 MiB) and allocator slack, not the 94 MiB read
    reference = np.load(tmp_path / "x.npy", mmap_mode="r")  # the map np.load gives: the kernel's pages count
    before = rss_kib()
    for start in range(0, 24_000, 256):
        np.asarray(reference[np.sort(order[start:start + 256])])
    assert rss_kib() - before > 48 * 1024  # (why the rows are read, not mapped: see engine/data/mapped.py)
