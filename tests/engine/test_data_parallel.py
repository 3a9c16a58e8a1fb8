"""Data-parallel training (issue 16): DistributedDataParallel over gloo with two CPU processes, driven through the
protocol like any run. Each test starts two rank processes (a few seconds: each imports torch)."""

import json
import os
import signal
import time
from pathlib import Path

import pytest
import torch

from torchtui.engine import protocol as p
from torchtui.engine.config import from_dict
from torchtui.engine.host import InProcessHost
from torchtui.engine.run import checkpoint as ckpt
from torchtui.engine.schema import ConfigError

from .helpers import of, run_to_end


def config(devices=2, batch_size=8, epochs=2, n=200, **train) -> dict:
    """160 train samples: 10 global batches of 16 an epoch (8 a rank), 20 steps in 2 epochs."""
    return {"name": "ddp", "data": {"source": "moons", "n_samples": n, "noise": 0.2, "val_fraction": 0.2,
                                    "test_fraction": 0.0},
            "model": {"layers": [16, 16]},
            "train": {"batch_size": batch_size, "epochs": epochs, "lr": 0.01, "optimizer": "adam",
                      "checkpoint_every": 0.0, **train},
            "device": {"device": "cpu", "devices": devices}}


@pytest.fixture
def host(tmp_path):
    with InProcessHost(str(tmp_path / "runs")) as h:
        h.wait_for(lambda e: isinstance(e, p.EngineReady), timeout=60)
        yield h


def losses(events) -> dict[int, float]:
    return {s: v for e in of(events, p.StepStats) for s, v in zip(e.step, e.loss)}


def weights(run_dir: str) -> dict:
    return ckpt.load_checkpoint(Path(run_dir) / "checkpoints" / "last.pt")["model"]


def record(run_dir: str, rank: int) -> list[dict]:
    lines = (Path(run_dir) / "ranks" / f"{rank}.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines]


def test_two_ranks_of_batch_b_train_like_one_process_of_batch_2b(host):
    """The same data, split, init and batch order: 20 steps of DDP (2 × 8) equal 20 steps of one process (16),
    in the loss of every step and in the final weights, to 1e-5."""
    ddp_events, ddp_end = run_to_end(host, config(devices=2, batch_size=8), timeout=120)
    one_events, one_end = run_to_end(host, config(devices=1, batch_size=16), timeout=120)
    assert ddp_end.state == one_end.state == p.FINISHED, (ddp_end.summary, one_end.summary)
    started = of(ddp_events, p.RunStarted)[0]
    assert started.world_size == 2 and started.total_steps == 20 and "ddp" in started.device
    ddp_loss, one_loss = losses(ddp_events), losses(one_events)
    assert sorted(ddp_loss) == sorted(one_loss) == list(range(1, 21))
    assert max(abs(ddp_loss[s] - one_loss[s]) for s in one_loss) < 1e-5
    a, b = weights(ddp_end.summary["run_dir"]), weights(one_end.summary["run_dir"])
    assert a.keys() == b.keys() and all(torch.allclose(a[k], b[k], atol=1e-5, rtol=0) for k in a)


def test_an_uneven_last_batch_weighs_each_rank_by_its_rows(host):
    """170 train samples: 10 batches of 16 and a last one of 10, split 5 + 5; 165: the last 5 split 3 + 2, each
    rank's mean weighted by its rows. Still the same training as one process."""
    for n in (213, 207):  # 170 and 165 train samples after the 20 % val split
        ddp_events, ddp_end = run_to_end(host, config(devices=2, batch_size=8, epochs=1, n=n), timeout=120)
        one_events, one_end = run_to_end(host, config(devices=1, batch_size=16, epochs=1, n=n), timeout=120)
        ddp_loss, one_loss = losses(ddp_events), losses(one_events)
        assert sorted(ddp_loss) == sorted(one_loss) == list(range(1, 12))
        assert max(abs(ddp_loss[s] - one_loss[s]) for s in one_loss) < 1e-5
        a, b = weights(ddp_end.summary["run_dir"]), weights(one_end.summary["run_dir"])
        assert all(torch.allclose(a[k], b[k], atol=1e-5, rtol=0) for k in a)


@pytest.mark.parametrize("train", [{"accumulate": 2}, {"eval_every": 3}, {"overfit_batches": 2, "epochs": 5},
                                   {"batch_size": 0}], ids=["accumulate", "eval_every", "overfit", "full-batch"])
def test_the_same_holds_with_accumulation_evaluations_overfitting_and_full_batches(host, train):
    """Gradient accumulation (DDP's no_sync on all but a step's last micro-batch), extra evaluations, the
    overfit check (N batches of all ranks) and batch_size 0 (each rank a share of the split)."""
    train = dict(train)
    batch = train.pop("batch_size", 8)
    ddp_events, ddp_end = run_to_end(host, config(devices=2, batch_size=batch, **train), timeout=120)
    one_events, one_end = run_to_end(host, config(devices=1, batch_size=2 * batch, **train), timeout=120)
    ddp_loss, one_loss = losses(ddp_events), losses(one_events)
    assert ddp_end.state == one_end.state == p.FINISHED and sorted(ddp_loss) == sorted(one_loss)
    assert max(abs(ddp_loss[s] - one_loss[s]) for s in one_loss) < 1e-5
    a, b = weights(ddp_end.summary["run_dir"]), weights(one_end.summary["run_dir"])
    assert all(torch.allclose(a[k], b[k], atol=1e-5, rtol=0) for k in a)


def test_pause_step_and_an_lr_change_apply_at_the_same_step_on_every_rank(host):
    host.send(p.Start(config=config(epochs=0)))  # until stopped
    started = host.wait_for(lambda e: isinstance(e, p.RunStarted), timeout=120)
    before: list = []
    host.wait_for(lambda e: isinstance(e, p.StepStats) and e.step[-1] >= 5, timeout=60, seen=before)
    host.send(p.Pause())
    host.wait_for(lambda e: isinstance(e, p.StateChanged) and e.state == p.PAUSED, timeout=30, seen=before)
    paused_at = max(s for e in of(before, p.StepStats) for s in e.step)  # every step taken is flushed first
    host.send(p.Step(n=3))
    host.send(p.SetHparams(lr=0.05))
    seen: list = []  # every event from here on: the steps after the change may all come before the Stop
    changed = host.wait_for(lambda e: isinstance(e, p.HparamsChanged), timeout=30, seen=seen)
    host.wait_for(lambda e: isinstance(e, p.StepStats) and e.step[-1] == paused_at + 3, timeout=30, seen=seen)
    host.send(p.Resume())
    host.wait_for(lambda e: isinstance(e, p.StepStats) and e.step[-1] >= changed.step + 20, timeout=60, seen=seen)
    host.send(p.Stop())
    end = host.wait_for(lambda e: isinstance(e, p.RunFinished), timeout=60, seen=seen)
    assert end.state == p.STOPPED
    applied = [[(r["command"], r["step"]) for r in record(started.run_dir, rank) if "command" in r] for rank in (0, 1)]
    assert applied[0] == applied[1]  # the same commands, at the same steps
    names = [c for c, _ in applied[0]]
    assert names[:4] == ["Pause", "Step", "SetHparams", "Resume"] and names[-1] == "Stop"
    pause_step = dict(applied[0])["Pause"]
    assert pause_step == paused_at and dict(applied[0])["Resume"] == pause_step + 3  # three steps while paused
    # the lr change comes in while the three steps are taken: the step it reports is the one both ranks applied it at
    assert changed.step == dict(applied[0])["SetHparams"] and pause_step <= changed.step <= pause_step + 3
    assert changed.changes["lr"] == [0.01, 0.05]
    lr_after = {s: lr for e in of(seen, p.StepStats) for s, lr in zip(e.step, e.lr)}
    assert lr_after and all(abs(lr - 0.05) < 1e-12 for s, lr in lr_after.items() if s > changed.step)
    ends = [next(r for r in record(started.run_dir, rank) if "end" in r) for rank in (0, 1)]
    assert ends[0]["step"] == ends[1]["step"] == end.summary["steps"]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie still answers kill 0: look at its state
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def test_a_rank_that_dies_ends_the_run_failed_naming_it_and_leaves_no_process(host):
    host.send(p.Start(config=config(epochs=0)))
    started = host.wait_for(lambda e: isinstance(e, p.RunStarted), timeout=120)
    host.wait_for(lambda e: isinstance(e, p.StepStats) and e.step[-1] >= 5, timeout=60)
    pids = {r: record(started.run_dir, r)[0]["pid"] for r in (0, 1)}
    os.kill(pids[1], signal.SIGKILL)
    end = host.wait_for(lambda e: isinstance(e, p.StateChanged) and e.state in p.END_STATES, timeout=90)
    assert end.state == p.FAILED and "rank 1" in end.reason and "SIGKILL" in end.reason
    summary = json.loads((Path(started.run_dir) / "summary.json").read_text())
    assert summary["state"] == p.FAILED and "rank 1" in summary["reason"]
    deadline = time.monotonic() + 30
    while any(_alive(pid) for pid in pids.values()) and time.monotonic() < deadline:
        time.sleep(0.1)  # polling the process table: no event says a process is gone
    assert not any(_alive(pid) for pid in pids.values())
    # The engine goes on: the next run trains.
    _, again = run_to_end(host, config(devices=1, epochs=1), timeout=120)
    assert again.state == p.FINISHED


def test_a_checkpoint_of_two_ranks_resumes_on_one_and_back(host):
    """train.batch_size is per rank: 3,200 train samples are 200 steps an epoch on two ranks, 400 on one."""
    events, end = run_to_end(host, config(epochs=1, n=4000), timeout=120)
    run_dir = end.summary["run_dir"]
    assert end.state == p.FINISHED and end.summary["steps"] == 200
    assert ckpt.load_checkpoint(Path(run_dir) / "checkpoints" / "last.pt")["world_size"] == 2
    # one process, paused and stopped in the middle of its second epoch
    host.send(p.Start(config=config(devices=1, epochs=0, n=4000), resume=run_dir))
    started = host.wait_for(lambda e: isinstance(e, p.RunStarted), timeout=120)
    assert started.start_step == 200 and started.world_size == 1 and started.steps_per_epoch == 400
    host.wait_for(lambda e: isinstance(e, p.StepStats), timeout=60)
    host.send(p.Pause())
    host.wait_for(lambda e: isinstance(e, p.StateChanged) and e.state == p.PAUSED, timeout=30)
    host.send(p.Stop())
    stopped = host.wait_for(lambda e: isinstance(e, p.RunFinished), timeout=60)
    state = ckpt.load_checkpoint(Path(run_dir) / "checkpoints" / "last.pt")
    assert state["world_size"] == 1 and state["step"] == stopped.summary["steps"]
    assert state["epoch"] == 1 and 0 < state["batch_in_epoch"] < 400, (state["epoch"], state["batch_in_epoch"])
    # … and back to two ranks: the position in the epoch is kept in samples (k batches of 8 = k // 2 of 2 × 8)
    events, end = run_to_end(host, config(devices=2, epochs=2, n=4000), timeout=120, resume=run_dir)
    assert end.state == p.FINISHED
    assert of(events, p.RunStarted)[0].start_step == state["step"]
    assert end.summary["steps"] == state["step"] + 200 - state["batch_in_epoch"] // 2


def test_devices_are_validated_and_named():
    listed = config(devices=[0, 1])
    listed["device"]["device"] = "cuda"
    ok = from_dict(listed).device
    assert ok.device_list == [0, 1] and ok.world_size() == 2 and ok.devices == "[0, 1]"
    with pytest.raises(ConfigError, match="picks GPUs, but device is cpu"):
        from_dict(config(devices=[0, 1]))
    for bad, where in ((0, "device.devices"), ("two", "device.devices"), ([1, 1], "device.devices")):
        with pytest.raises(ConfigError, match=where):
            from_dict(config(devices=bad))
    with pytest.raises(ConfigError, match="train.optimizer: lbfgs"):
        from_dict(config(optimizer="lbfgs"))


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_gpus_asked_for_on_a_machine_without_them_fail_with_the_fix(host):
    listed = config(devices=[0, 1])
    listed["device"]["device"] = "cuda"
    events, end = run_to_end(host, listed, timeout=60)
    errors = [e.message for e in of(events, p.Error)]
    assert end is None and any("has 0 CUDA device(s)" in m for m in errors), errors
