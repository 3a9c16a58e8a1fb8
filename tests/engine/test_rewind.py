"""Rewind as a branch (issue 27): a rewind to step s with unchanged settings reproduces the original run after s.

The reference is the same config trained straight through, once, in the same process: its per-step losses
(metrics.jsonl) and its final weights (last.pt). The rewound run is paused early, stepped on a few steps so
snapshots exist at known steps, rewound to one of them, and trained to the end as a branch: its losses after the
branch point and its final weights must match the reference to 1e-6. An MLP with dropout, and a CNN with batch norm,
both with gradient accumulation and a warm-up + cosine schedule (the RNG, the running statistics, the schedule
and the data position all have to come back exactly).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from torchtui.engine import protocol as p
from torchtui.engine.host import InProcessHost

from .helpers import of

TRAIN = {"batch_size": 16, "epochs": 3, "lr": 0.01, "accumulate": 2, "scheduler": "cosine", "warmup_steps": 3,
         "checkpoint_every": 0, "snapshot_every": 1e-6, "eval_budget": 0, "guard": "off"}

MLP = {"name": "rw-mlp", "data": {"source": "moons", "n_samples": 200, "noise": 0.2},
       "model": {"layers": [{"units": 16, "dropout": 0.3}, {"units": 16, "dropout": 0.3}]},
       "train": TRAIN, "device": {"device": "cpu"}}
CNN = {"name": "rw-cnn", "data": {"source": "digits", "limit": 160},
       "model": {"kind": "cnn", "conv": [{"channels": 4, "norm": "batch"}], "layers": [{"units": 16, "norm": "batch"}]},
       "train": TRAIN, "device": {"device": "cpu"}}


def losses(run_dir: str) -> dict[int, float]:
    rows = [json.loads(line) for line in Path(run_dir, "metrics.jsonl").read_text().splitlines()]
    return {r["step"]: r["loss"] for r in rows if r.get("type") == "step"}


def weights(run_dir: str) -> dict:
    return torch.load(Path(run_dir, "checkpoints", "last.pt"), weights_only=True)["model"]


def finished(host, seen, run_id=None):
    return host.wait_for(lambda e: isinstance(e, p.RunFinished) and (run_id is None or e.run_id == run_id),
                         timeout=60, seen=seen)


def step_to(host, step: int, seen) -> None:
    host.send(p.Step(step - max((s for e in of(seen, p.StepStats) for s in e.step), default=0)))
    host.wait_for(lambda e: isinstance(e, p.StepStats) and e.step and e.step[-1] >= step, timeout=30, seen=seen)


@pytest.mark.parametrize("config", [MLP, CNN], ids=["mlp-dropout", "cnn-batchnorm"])
def test_rewind_unchanged_reproduces_the_run_after_the_branch_point(tmp_path, config):
    with InProcessHost(str(tmp_path)) as host:
        seen: list = []
        host.send(p.Start(config=config))
        reference = finished(host, seen)
        assert reference.state == p.FINISHED, reference.summary
        ref_dir = reference.summary["run_dir"]

        seen = []
        host.send(p.Start(config=config))
        host.send(p.Pause())
        started = host.wait_for(lambda e: isinstance(e, p.RunStarted), seen=seen)
        host.wait_for(lambda e: isinstance(e, p.StateChanged) and e.state == p.PAUSED, seen=seen)
        step_to(host, 4, seen)   # mid-epoch (9 batches an epoch, 2 a step): batch 8 of epoch 0
        step_to(host, 7, seen)
        host.send(p.ListSnapshots(request_id=5))
        listed = host.wait_for(lambda e: isinstance(e, p.SnapshotsListed), seen=seen)
        steps = [s["step"] for s in listed.snapshots]
        assert 4 in steps and all(s["run_id"] == started.run_id for s in listed.snapshots), listed
        host.send(p.Rewind(step=4, request_id=9))
        branched = host.wait_for(lambda e: isinstance(e, p.Branched), seen=seen)
        branch_started = host.wait_for(lambda e: isinstance(e, p.RunStarted), seen=seen)
        branch = finished(host, seen, branched.branch_id)

    parent = [e for e in seen if isinstance(e, p.RunFinished) and e.run_id == started.run_id][0]
    assert parent.state == p.STOPPED and "rewound to step 4" in parent.summary["reason"]
    assert (branched.run_id, branched.parent_id, branched.step, branched.request_id) == (started.run_id,
                                                                                          started.run_id, 4, 9)
    assert branch_started.run_id == branched.branch_id and branch_started.start_step == 4
    origin = json.loads(Path(branched.branch_dir, "origin.json").read_text())
    assert origin["branch_of"]["run_id"] == started.run_id and origin["branch_of"]["step"] == 4
    assert branch.state == p.FINISHED
    ref, got = losses(ref_dir), losses(branched.branch_dir)
    assert min(got) == 5 and sorted(got) == [s for s in sorted(ref) if s > 4]
    for step, loss in got.items():
        assert loss == pytest.approx(ref[step], abs=1e-6, rel=1e-6), step
    assert max(losses(started.run_dir)) == 7  # the parent is left as it was: stopped at step 7
    want, have = weights(ref_dir), weights(branched.branch_dir)
    for name, tensor in want.items():
        torch.testing.assert_close(have[name], tensor, atol=1e-6, rtol=1e-6, msg=name)


def test_a_branch_exports_with_its_parents_changes_and_resumes(tmp_path):
    """export replays the parent's live changes up to the branch point, then the branch's (and refuses, naming it,
    when the parent's folder is gone); resume of a branch works like any run's. A second rewind to the same
    snapshot makes a sibling (its origin names the same parent)."""
    import shutil

    from torchtui.engine.export import export
    from torchtui.engine.schema import ConfigError

    config = {**MLP, "train": {**TRAIN, "epochs": 2}}
    with InProcessHost(str(tmp_path)) as host:
        seen: list = []
        host.send(p.Start(config=config))
        host.send(p.Pause())
        started = host.wait_for(lambda e: isinstance(e, p.RunStarted), seen=seen)
        host.wait_for(lambda e: isinstance(e, p.StateChanged) and e.state == p.PAUSED, seen=seen)
        step_to(host, 2, seen)
        host.send(p.SetHparams(lr=0.02))
        step_to(host, 4, seen)
        step_to(host, 6, seen)
        host.send(p.Rewind(step=4, changes={"lr_scale": 0.5}))
        first = host.wait_for(lambda e: isinstance(e, p.Branched), seen=seen)
        host.wait_for(lambda e: isinstance(e, p.RunStarted), seen=seen)
        host.send(p.Rewind(step=4))  # the branch's own list holds its parent's snapshot of step 4: a sibling
        second = host.wait_for(lambda e: isinstance(e, p.Branched), seen=seen)
        finished(host, seen, second.branch_id)
        host.send(p.Start(resume=first.branch_dir, config={**config, "train": {**config["train"], "epochs": 3}}))
        resumed = host.wait_for(lambda e: isinstance(e, p.RunStarted), seen=seen)
        done = finished(host, seen, first.branch_id)
    assert (second.parent_id, second.step, second.run_id) == (started.run_id, 4, first.branch_id)
    assert json.loads(Path(second.branch_dir, "origin.json").read_text())["branch_of"]["run_id"] == started.run_id
    # the first branch was rewound at once, so its last.pt holds step 4; resumed, it trains on to epoch 3
    assert (resumed.run_id, resumed.start_step, resumed.base_lr) == (first.branch_id, 4, pytest.approx(0.01))
    assert done.state == p.FINISHED and done.summary["steps"] == 3 * resumed.steps_per_epoch
    changes = export(first.branch_dir).changes
    lr_changes = of(seen, p.HparamsChanged)
    assert list(changes) == [2, 4]  # the parent's at step 2, then the branch's at 4
    assert changes[2]["lr"] == pytest.approx(lr_changes[0].changes["lr"][1])
    assert changes[4]["lr"] == pytest.approx(lr_changes[1].changes["lr"][1])
    shutil.rmtree(started.run_dir)
    with pytest.raises(ConfigError, match=f"is a branch of run {started.run_id} at step 4, whose folder"):
        export(first.branch_dir)


def test_without_an_active_run_snapshots_and_rewind_say_why(tmp_path):
    with InProcessHost(str(tmp_path)) as host:
        host.send(p.ListSnapshots(request_id=3))
        listed = host.wait_for(lambda e: isinstance(e, p.SnapshotsListed), timeout=30)
        host.send(p.Rewind(step=10))
        error = host.wait_for(lambda e: isinstance(e, p.Error), timeout=30)
    assert listed.request_id == 3 and listed.snapshots == [] and "not checkpoints" in listed.error
    assert error.message.startswith("rewind: no run is active") and "resume" in error.message


def test_snapshots_are_taken_while_a_run_trains_unpaused(tmp_path):
    """A snapshot is due at a statistics flush (every 0.1 s, or 500 steps at most): one epoch of 700 steps with no
    evaluation inside it gets one mid-epoch. They were only taken when something else flushed (a pause, an
    evaluation), so a steady run kept the step-0 snapshot for a whole epoch."""
    config = {**MLP, "data": {"source": "moons", "n_samples": 4000, "noise": 0.2, "val_fraction": 0.3},
              "model": {"layers": [8]}, "train": {**TRAIN, "batch_size": 4, "accumulate": 1, "epochs": 1}}
    with InProcessHost(str(tmp_path)) as host:
        host.send(p.Start(config=config))
        done = host.wait_for(lambda e: isinstance(e, p.RunFinished), timeout=120)
        steps = [s.step for s in host.engine.session.snapshots.ring.items]
    assert done.summary["steps"] == 700 and steps[0] == 0 and any(0 < s < 700 for s in steps), steps
