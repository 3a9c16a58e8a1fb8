"""Faults during a run: user code that blows up or returns inf, a failing metric, a simulated CUDA
out-of-memory, a full disk. Each ends the run as it should, keeps the last good files, and the engine
takes the next start."""

from __future__ import annotations

import errno
import math
import subprocess
import textwrap
from pathlib import Path

import pytest
import torch

from torchtui.engine import files
from torchtui.engine import protocol as p
from torchtui.engine.host import InProcessHost
from torchtui.engine.run import checkpoint as ckpt

from .helpers import of, run_to_end

MODULE = """
    import torch
    from torch import nn

    class Net(nn.Module):
        '''A small MLP that misbehaves after `after` training batches, as told by `fault`.'''

        def __init__(self, in_features, num_classes, fault="none", after=40):
            super().__init__()
            self.fc1 = nn.Linear(in_features, 16)
            self.head = nn.Linear(16, num_classes)
            self.fault, self.after, self.calls = fault, after, 0

        def forward(self, x):
            if self.training:
                self.calls += 1
            out = self.head(torch.relu(self.fc1(x)))
            if self.training and self.calls > self.after:
                if self.fault == "inf":
                    return out * float("inf")
                if self.fault == "raise":
                    raise ValueError(f"batch {self.calls} has a shape I did not expect")
                if self.fault == "oom":
                    raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")
            return out
"""


@pytest.fixture
def module(tmp_path) -> Path:
    path = tmp_path / "net.py"
    path.write_text(textwrap.dedent(MODULE))
    return path


@pytest.fixture
def host(tmp_path):
    with InProcessHost(str(tmp_path / "runs")) as h:
        yield h


def config(module: Path, fault: str, **train) -> dict:
    return {"name": f"fault-{fault}", "data": {"source": "moons", "n_samples": 256},
            "model": {"kind": "custom", "module": f"{module}:Net", "kwargs": {"fault": fault, "after": 40}},
            "train": {"batch_size": 32, "epochs": 50, "lr": 0.01, "checkpoint_every": 0, **train},
            "device": {"device": "cpu"}}


def assert_next_start_works(host) -> None:
    _, ok = run_to_end(host, {"data": {"source": "moons", "n_samples": 128}, "train": {"epochs": 1},
                              "device": {"device": "cpu"}})
    assert ok.state == p.FINISHED


def test_inf_from_a_custom_module_diverges_and_keeps_the_last_good_checkpoint(host, module):
    # guard stop: the fault persists, so the headless default (rollback) would go back and meet it again, then stop
    # naming the step it came back at; stop names the first, as a divergence does.
    events, done = run_to_end(host, config(module, "inf", guard="stop"))
    assert done.state == p.DIVERGED
    reason = done.summary["reason"]
    assert "non-finite loss at step 41" in reason and "layer" in reason, reason
    saved = of(events, p.CheckpointSaved)
    assert saved and all(e.step < 41 for e in saved)  # written at epoch ends before; never after the fault
    state = ckpt.load_checkpoint(Path(saved[-1].path))
    assert state["step"] == saved[-1].step
    assert all(torch.isfinite(t).all() for t in state["model"].values())
    assert_next_start_works(host)


@pytest.mark.parametrize("fault, state, words", [
    ("raise", p.FAILED, "ValueError: batch 41 has a shape I did not expect"),
    ("oom", p.FAILED, "CUDA ran out of memory: lower train.batch_size"),
])
def test_an_exception_in_forward_fails_with_its_traceback(host, module, fault, state, words):
    events, done = run_to_end(host, config(module, fault))
    assert done.state == state and words.split(":")[0] in done.summary["reason"] + of(events, p.Error)[0].message
    error = of(events, p.Error)[0]
    assert words in error.message
    assert f'File "{module}"' in error.traceback and "in forward" in error.traceback
    assert_next_start_works(host)


def test_an_exception_in_a_dataset_factory_fails_at_start_with_its_traceback(host, tmp_path):
    maker = tmp_path / "data.py"
    maker.write_text("def make(n=10):\n    rows = list(range(n))\n    return rows[n + 1], rows\n")
    events, done = run_to_end(host, {"data": {"source": "code", "path": f"{maker}:make"},
                                     "device": {"device": "cpu"}})
    assert done is None
    error = of(events, p.Error)[0]
    assert error.message.startswith("data.path: ") and f"IndexError at {maker}:3" in error.message
    assert "Traceback" in error.traceback and f'File "{maker}", line 3' in error.traceback
    assert of(events, p.StateChanged)[-1].state == p.FAILED
    assert_next_start_works(host)


def test_an_exception_in_a_metric_fails_the_run(host, monkeypatch):
    import torchmetrics.functional.classification as tmc

    def broken(*args, **kwargs):
        raise RuntimeError("metric exploded")

    monkeypatch.setattr(tmc, "multiclass_f1_score", broken)
    events, done = run_to_end(host, {"data": {"source": "moons", "n_samples": 128}, "train": {"epochs": 2},
                                     "device": {"device": "cpu"}})
    assert done.state == p.FAILED and "metric exploded" in done.summary["reason"]
    assert "multiclass_f1_score" in "".join(e.traceback for e in of(events, p.Error)) or \
        "broken" in "".join(e.traceback for e in of(events, p.Error))
    monkeypatch.undo()
    assert_next_start_works(host)


# ------------------------------------------------------------------ a full disk

def disk_full(monkeypatch, after_bytes: int = 0, suffix: str = ""):
    """Make atomic writes of files ending in `suffix` fail with ENOSPC once `after_bytes` were written."""
    real_fdopen, real_write = files.os.fdopen, files.atomic_write_bytes

    class Full:
        def __init__(self, fh):
            self.fh, self.left = fh, after_bytes

        def write(self, data):
            if len(data) > self.left:
                raise OSError(errno.ENOSPC, "No space left on device")
            self.left -= len(data)
            return self.fh.write(data)

        def __getattr__(self, name):
            return getattr(self.fh, name)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return self.fh.__exit__(*exc)

    def write(path, data):
        if not str(path).endswith(suffix):
            return real_write(path, data)
        files.os.fdopen = lambda fd, mode: Full(real_fdopen(fd, mode))
        try:
            return real_write(path, data)
        finally:
            files.os.fdopen = real_fdopen

    monkeypatch.setattr(files, "atomic_write_bytes", write)
    monkeypatch.setattr(ckpt, "atomic_write_bytes", write)


def test_a_full_disk_during_a_checkpoint_ends_the_run_failed_and_keeps_the_previous_one(host, tmp_path, monkeypatch):
    # It was reported and the run went on to `finished` (issue 35): a run is never finished over lost data.
    events, done = run_to_end(host, {"name": "disk", "data": {"source": "moons", "n_samples": 256},
                                     "train": {"epochs": 2, "checkpoint_every": 0}, "device": {"device": "cpu"}})
    last = Path(done.summary["run_dir"]) / "checkpoints" / "last.pt"
    before = last.read_bytes()
    disk_full(monkeypatch, suffix=".pt")
    events, again = run_to_end(host, {"name": "disk", "data": {"source": "moons", "n_samples": 256},
                                      "train": {"epochs": 4, "checkpoint_every": 0}, "device": {"device": "cpu"}},
                               resume=done.summary["run_dir"])
    assert again.state == p.FAILED and again.summary["state"] == p.FAILED
    reason = again.summary["reason"]
    assert reason.startswith("disk full writing ") and f"; last good checkpoint step {done.summary['steps']}" in reason
    errors = [e.message for e in of(events, p.Error)]
    assert len(errors) == 1 and "the run stops as failed (free space, then torchtui resume" in errors[0]
    assert last.read_bytes() == before  # byte for byte the previous checkpoint
    assert not list(last.parent.glob(".*.tmp"))  # no half-written file left behind
    ckpt.load_checkpoint(last)


def test_a_full_disk_while_saving_a_preset_keeps_the_old_one(monkeypatch):
    from torchtui.engine import presets
    from torchtui.engine.config import ExperimentConfig

    path = presets.save(ExperimentConfig(name="mine"), "mine")
    before = path.read_bytes()
    disk_full(monkeypatch, after_bytes=10)
    with pytest.raises(OSError, match="No space left"):
        presets.save(ExperimentConfig(name="changed"), "mine", overwrite=True)
    assert path.read_bytes() == before and not list(path.parent.glob(".*.tmp"))


@pytest.fixture
def tiny_tmpfs(tmp_path):
    """A real 256 KiB tmpfs (needs root or CAP_SYS_ADMIN; skipped where mounting is not allowed)."""
    mount = tmp_path / "small"
    mount.mkdir()
    made = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(mount)], capture_output=True)
    if made.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {made.stderr.decode().strip()}")
    yield mount
    subprocess.run(["umount", str(mount)], check=False)


def test_a_really_full_disk(tiny_tmpfs):
    """A model too big for the disk: every checkpoint write fails with ENOSPC, files stay whole."""
    cfg = {"name": "big", "data": {"source": "moons", "n_samples": 128}, "model": {"layers": [160, 160]},
           "train": {"epochs": 3, "checkpoint_every": 0}, "device": {"device": "cpu"}}
    with InProcessHost(str(tiny_tmpfs / "runs")) as h:
        events, done = run_to_end(h, cfg)
    assert done.state == p.FAILED and done.summary["reason"].startswith("disk full writing "), done.summary
    errors = [e.message for e in of(events, p.Error)]
    assert len(errors) == 1 and "disk full" in errors[0], errors
    folder = Path(done.summary["run_dir"])
    assert not list((folder / "checkpoints").glob(".*.tmp"))
    for name in ("last.pt", "best.pt"):
        path = folder / "checkpoints" / name
        if path.exists():  # a file that is there is a whole one
            ckpt.load_checkpoint(path)
    assert math.isfinite(done.summary["val"]["loss"])


@pytest.mark.parametrize("size", ["64k", "512k"])
def test_train_on_a_full_disk_exits_failed_naming_its_last_good_checkpoint(size, tmp_path):
    """The CLI on a real small tmpfs: it said `finished`, exit 0, with rows and checkpoints missing."""
    import json
    import sys

    mount = tmp_path / "small"
    mount.mkdir()
    made = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(mount)], capture_output=True)
    if made.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {made.stderr.decode().strip()}")
    try:
        done = subprocess.run([sys.executable, "-m", "torchtui.cli", "train", "moons", "--epochs", "400", "--device",
                               "cpu", "--set", "train.checkpoint_every=0", "--runs-dir", str(mount / "runs"),
                               "--json"], capture_output=True, text=True, timeout=600, stdin=subprocess.DEVNULL)
        assert done.returncode == 1, done.stderr[-2000:]
        answer = json.loads(done.stdout.splitlines()[-1])
        assert answer["state"] == "failed" and answer["reason"].startswith("disk full writing "), answer
        assert answer["epochs"] < 400
        (folder,) = (mount / "runs").iterdir()
        last = folder / "checkpoints" / "last.pt"
        if "no checkpoint was saved" in answer["reason"]:
            assert not last.exists()
        else:  # the checkpoint it names is on disk, whole, at that step
            good = int(answer["reason"].rsplit("last good checkpoint step ", 1)[1].replace(",", ""))  # 2,178
            assert ckpt.load_checkpoint(last)["step"] == good
        lines = (folder / "metrics.jsonl").read_text().splitlines()
        for line in lines[:-1]:  # every row but a torn last one is whole
            json.loads(line)
        assert not list(folder.rglob(".*.tmp"))
    finally:
        subprocess.run(["umount", str(mount)], check=False)
