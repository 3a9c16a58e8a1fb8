"""A run launched by torchrun (issue 29): two torchrun "nodes" on this machine train one data-parallel run that
rank 0 serves (ps, attach's commands, stop); and the per-rank view finds a rank whose data loading is slow.
Each test starts processes that import torch: a few seconds each, kept to one run apiece."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import torch
import yaml

from torchtui.cli import main as cli
from torchtui.engine import live
from torchtui.engine import protocol as p
from torchtui.engine.host import InProcessHost, ServerHost
from torchtui.engine.run import checkpoint as ckpt

from .test_data_parallel import _alive, record

DATA = {"source": "moons", "n_samples": 200, "noise": 0.2, "val_fraction": 0.2, "test_fraction": 0.0}


def config(batch_size: int, **extra) -> dict:
    """160 train samples: 10 steps an epoch of 2 x 8 (two ranks) or of 16 (one process), until stopped."""
    return {"schema": 1, "name": "launched", "data": dict(DATA), "model": {"layers": [16, 16]},
            "train": {"batch_size": batch_size, "epochs": 0, "lr": 0.01, "optimizer": "adam", "checkpoint_every": 0.0},
            "device": {"device": "cpu", "threads": 1}, **extra}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(condition, timeout: float, what: str):
    """Poll `condition` (a process table or a status file: no event says they changed) until it is truthy."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


def step_losses(run_dir: str) -> dict[int, float]:
    rows = [json.loads(line) for line in (Path(run_dir) / "metrics.jsonl").read_text().splitlines() if line]
    return {r["step"]: r["loss"] for r in rows if r.get("type") == "step"}


def steer(host, start_paused_at: int | None = None) -> tuple[int, int]:
    """Pause, 3 steps, lr x2 (the app's + key sends SetHparams(lr_scale=2)), 20 steps; (paused at, lr changed at).
    `start_paused_at`: a run that paused before its first step takes that many steps first."""
    seen: list = []
    if start_paused_at is None:
        host.send(p.Pause())
    host.wait_for(lambda e: isinstance(e, p.StateChanged) and e.state == p.PAUSED, timeout=60, seen=seen)
    paused = max((s for e in seen if isinstance(e, p.StepStats) for s in e.step), default=0)
    if start_paused_at is not None:  # the reference: paused before its first step, it catches up with the ranks
        assert paused == 0
        paused = start_paused_at
        host.send(p.Step(n=paused))
        host.wait_for(lambda e: isinstance(e, p.StepStats) and e.step[-1] == paused, timeout=60)
    host.send(p.Step(n=3))
    host.wait_for(lambda e: isinstance(e, p.StepStats) and e.step[-1] == paused + 3, timeout=60)
    host.send(p.SetHparams(lr_scale=2.0))
    changed = host.wait_for(lambda e: isinstance(e, p.HparamsChanged), timeout=60)
    host.send(p.Step(n=20))
    host.wait_for(lambda e: isinstance(e, p.StepStats) and e.step[-1] == paused + 23, timeout=60)
    return paused, changed.step


def test_two_torchrun_nodes_train_like_one_process_of_twice_the_batch_and_rank_0_steers_both(runtime, tmp_path,
                                                                                              capsys):
    preset = tmp_path / "launched.yaml"
    preset.write_text(yaml.safe_dump(config(batch_size=8), sort_keys=False))
    port, runs = free_port(), tmp_path / "runs"
    nodes = [subprocess.Popen(
        [sys.executable, "-m", "torch.distributed.run", "--nnodes", "2", "--nproc-per-node", "1", "--node-rank",
         str(node), "--rdzv-backend", "c10d", "--rdzv-endpoint", f"127.0.0.1:{port}", "-m", "torchtui.cli", "train",
         str(preset), "--runs-dir", str(runs)],
        stdout=open(tmp_path / f"node{node}.log", "w"), stderr=subprocess.STDOUT) for node in (0, 1)]
    try:
        info = wait_until(lambda: next((i for i in live.servers() if i.run_id), None), 180, "rank 0's run in ps")
        assert cli.main(["ps", "--json"]) == 0
        listed = json.loads(capsys.readouterr().out.strip().splitlines()[-1])["runs"]
        assert [r["run_id"] for r in listed] == [info.run_id] and listed[0]["device"] == "cpu ×2 ddp"
        host = ServerHost.attach(info.run_id)
        host.wait_for(lambda e: isinstance(e, p.RunStarted), timeout=60)
        paused, changed = steer(host)
        assert cli.main(["stop", info.run_id]) == 0  # stopped while paused: every rank ends at the same step
        host.detach()
        codes = [node.wait(timeout=120) for node in nodes]
    finally:
        for node in nodes:
            if node.poll() is None:
                node.kill()
                node.wait()
    logs = "\n".join((tmp_path / f"node{n}.log").read_text()[-2000:] for n in (0, 1))
    assert codes == [0, 0], logs
    run_dir = info.run_dir
    summary = json.loads((Path(run_dir) / "summary.json").read_text())
    assert summary["state"] == p.STOPPED and summary["steps"] == paused + 23, summary
    applied = [[(r["command"], r["step"]) for r in record(run_dir, rank) if "command" in r] for rank in (0, 1)]
    assert applied[0] == applied[1] and ("SetHparams", changed) in applied[0] and changed == paused + 3
    ends = [next(r for r in record(run_dir, rank) if "end" in r) for rank in (0, 1)]
    assert ends[0]["step"] == ends[1]["step"] == paused + 23
    assert not any(_alive(record(run_dir, rank)[0]["pid"]) for rank in (0, 1))
    assert live.servers() == []  # rank 0's socket and status file went with it

    # One process with twice the batch, the same commands at the same steps: the same training, to 1e-5.
    with InProcessHost(str(tmp_path / "reference")) as ref:
        ref.send(p.Start(config=config(batch_size=16)))
        ref.send(p.Pause())  # waiting in the inbox while the run is prepared: it pauses before its first step
        started = ref.wait_for(lambda e: isinstance(e, p.RunStarted), timeout=120)
        steer(ref, start_paused_at=paused)
        ref.send(p.Stop())
        ref.wait_for(lambda e: isinstance(e, p.RunFinished), timeout=60)
    ours, theirs = step_losses(run_dir), step_losses(started.run_dir)
    assert sorted(ours) == sorted(theirs) == list(range(1, paused + 24))
    assert max(abs(ours[s] - theirs[s]) for s in ours) < 1e-5
    a = ckpt.load_checkpoint(Path(run_dir) / "checkpoints" / "last.pt")["model"]
    b = ckpt.load_checkpoint(Path(started.run_dir) / "checkpoints" / "last.pt")["model"]
    assert a.keys() == b.keys() and all(torch.allclose(a[k], b[k], atol=1e-5, rtol=0) for k in a)


SLOW_DATA = textwrap.dedent("""
    import os, time
    import torch
    from torch.utils.data import Dataset

    class Moons(Dataset):
        # Rank 1's samples take a while to read (RANK is set for each rank, as torchrun sets it).
        def __init__(self, n, seed):
            g = torch.Generator().manual_seed(seed)
            self.x = torch.randn(n, 2, generator=g)
            self.targets = (self.x[:, 0] * self.x[:, 1] > 0).long()  # read without __getitem__
            self.slow = os.environ.get("RANK") == "1"
        def __len__(self):
            return len(self.x)
        def __getitem__(self, i):
            if self.slow:
                time.sleep(0.002)
            return self.x[i], self.targets[i]

    def data():
        return Moons(512, 0), Moons(64, 1)
""")


def test_a_rank_whose_data_loads_slowly_is_marked_slowest_by_data_wait(runtime, tmp_path, capsys):
    """Two ranks (--devices 2) read a code data source that is slow on rank 1: the RankStats of the flushes, the
    status file `ps` reads and its table all name rank 1, for its data wait. The run server runs in this process
    (RunServer, its engine thread started as serve() does): one torch import fewer than a server process."""
    from torchtui.engine.run.server import RunServer

    (tmp_path / "slow_data.py").write_text(SLOW_DATA)
    cfg = {"name": "slow-rank", "data": {"source": "code", "path": f"{tmp_path / 'slow_data.py'}:data",
                                         "stream": True, "test_fraction": 0.0},
           "model": {"layers": [8]}, "train": {"batch_size": 8, "epochs": 0, "lr": 0.01, "checkpoint_every": 0.0},
           "device": {"device": "cpu", "devices": 2, "threads": 1}}
    server = RunServer(str(tmp_path / "runs"))
    server.open()
    server.engine.start()
    host = ServerHost.attach(str(server.info.pid))
    try:
        host.send(p.Start(config=cfg))
        started = host.wait_for(lambda e: isinstance(e, (p.RunStarted, p.Error)), timeout=180)
        assert isinstance(started, p.RunStarted), started
        stats = host.wait_for(lambda e: isinstance(e, p.RankStats) and e.step >= 20, timeout=120)
        assert stats.slowest == 1 and stats.cause == "data wait", stats
        assert stats.data_wait[1] > 5 * max(stats.data_wait[0], 1e-4) and stats.comm_wait[0] > stats.comm_wait[1]

        def listed():
            capsys.readouterr()
            cli.main(["ps", "--json"])
            rows = json.loads(capsys.readouterr().out.strip().splitlines()[-1])["runs"]
            return rows[0] if rows and rows[0]["slowest"] else None

        row = wait_until(listed, 60, "ps to carry the per-rank figures")
        assert row["run_id"] == started.run_id and row["slowest"].endswith(":1 (data wait)")
        assert [r["rank"] for r in row["ranks"]] == [0, 1] and row["ranks"][1]["slowest"]
        assert not row["ranks"][0]["slowest"]
        assert all(r["memory"] > 0 and r["samples_per_s"] > 0 for r in row["ranks"])
        cli.main(["ps"])
        table = capsys.readouterr().out
        assert ":1 data " in table, table
    finally:
        host.detach()
        server.engine.send(p.Shutdown())
        server.engine.join(timeout=60)
        server.close()


def test_slurm_and_torchrun_variables_and_a_job_without_its_address():
    """SLURM's variables mapped as torch.distributed's env:// expects; a batch script's own process (no step) and a
    job of one process are not ranks; no MASTER_ADDR: one line naming it and the fix, exit 2."""
    from torchtui.engine.run.launched import Launch, first_host, launch_env

    step = {"SLURM_PROCID": "5", "SLURM_STEP_NUM_TASKS": "16", "SLURM_LOCALID": "1", "SLURM_NTASKS": "16",
            "SLURM_JOB_NODELIST": "gpu[07-08,11],cpu1"}
    assert launch_env(step) == Launch(5, 16, 1, "gpu07", 29500, "slurm")
    assert launch_env({**step, "MASTER_ADDR": "head", "MASTER_PORT": "4321"}).master_addr == "head"
    batch_script = {k: v for k, v in step.items() if k != "SLURM_STEP_NUM_TASKS"}
    assert launch_env(batch_script) is None and launch_env({**step, "SLURM_STEP_NUM_TASKS": "1"}) is None
    assert first_host("node-a,node-b") == "node-a" and first_host("n[3]") == "n3"
    torchrun = {"RANK": "1", "WORLD_SIZE": "2", "LOCAL_RANK": "0", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": "29511"}
    assert launch_env(torchrun) == Launch(1, 2, 0, "127.0.0.1", 29511, "torchrun")


def test_a_job_without_master_addr_says_so_in_one_line(monkeypatch, capsys):
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.delenv("MASTER_ADDR", raising=False)
    assert cli.main(["train", "moons"]) == cli.EXIT_USAGE
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "MASTER_ADDR is not set: export MASTER_ADDR=" in err[0], err
