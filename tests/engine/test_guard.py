"""The spike guard (issue 27): one bad batch (scaled by 1e6, or NaN) in an otherwise clean run.

Under `rollback` the run goes back to the snapshot before the bad step, skips that batch and finishes with the
clean run's val accuracy (± 0.01); metrics.jsonl records the rollback and the skipped batch, and its steps stay
one each (the rows after the snapshot were dropped). Under `ask` the run pauses with a GuardTripped naming the
batch and its worst samples, and each answer does what it says. The same bad batch with the guard off leaves
the run worse (it is a real hazard, not one the optimizer shrugs off).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from torchtui.engine import protocol as p
from torchtui.engine.data.batches import epoch_permutation
from torchtui.engine.data.splits import Splits
from torchtui.engine.host import InProcessHost

from .helpers import of

BAD = (2, 5)  # epoch, batch
CONFIG = {"name": "guard", "data": {"source": "moons", "n_samples": 1000, "noise": 0.1},
          "model": {"layers": [32, 32]},
          "train": {"batch_size": 32, "epochs": 6, "lr": 0.01, "checkpoint_every": 0, "eval_budget": 0,
                    "snapshot_every": 1e-6},
          "device": {"device": "cpu"}}


def config(guard: str) -> dict:
    return {**CONFIG, "train": {**CONFIG["train"], "guard": guard}}


@pytest.fixture
def host(tmp_path):
    with InProcessHost(str(tmp_path)) as h:
        yield h


@pytest.fixture
def bad_batch(monkeypatch):
    """Batch BAD of the train order comes scaled by `factor` (NaN: made NaN) whenever it is trained on."""
    real = Splits.train_batches
    factor = {"value": 1e6}

    def batches(self, order, batch_size, start_batch=0):
        # The epoch is told by its order (the guard also reads the batch back later, from another epoch).
        epoch = BAD[0] if torch.equal(order, epoch_permutation(len(order), 0, BAD[0], order.device)) else None
        for index, (xb, yb) in enumerate(real(self, order, batch_size, start_batch), start_batch):
            yield (xb * factor["value"] if (epoch, index) == BAD else xb), yb

    monkeypatch.setattr(Splits, "train_batches", batches)
    return factor


def train(host, guard: str, answer: str | None = None):
    seen: list = []
    host.send(p.Start(config=config(guard)))
    if answer is not None:
        tripped = host.wait_for(lambda e: isinstance(e, p.GuardTripped), timeout=60, seen=seen)
        host.wait_for(lambda e: isinstance(e, p.StateChanged) and e.state == p.PAUSED, timeout=10, seen=seen)
        assert tripped.action == "ask"
        host.send(p.GuardAnswer(answer))
    done = host.wait_for(lambda e: isinstance(e, p.RunFinished), timeout=60, seen=seen)
    return seen, done


def rows(done) -> list[dict]:
    path = Path(done.summary["run_dir"], "metrics.jsonl")
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_rollback_skips_the_bad_batch_and_reaches_the_clean_accuracy(host, bad_batch):
    bad_batch["value"] = 1.0
    _, clean = train(host, "rollback")
    assert clean.state == p.FINISHED
    bad_batch["value"] = 1e6
    _, unguarded = train(host, "off")  # the hazard is real: left alone, the batch costs accuracy
    clean_accuracy = clean.summary["val"]["accuracy"]
    assert unguarded.state == p.DIVERGED or unguarded.summary["val"]["accuracy"] < clean_accuracy - 0.02
    seen, done = train(host, "rollback")
    assert done.state == p.FINISHED, done.summary
    assert abs(done.summary["val"]["accuracy"] - clean.summary["val"]["accuracy"]) <= 0.01
    tripped, rolled = of(seen, p.GuardTripped), of(seen, p.RolledBack)
    assert len(tripped) == len(rolled) == 1 and tripped[0].action == "rollback"
    assert tripped[0].kind == "loss_spike" and tripped[0].batches == [list(BAD)]
    assert len(tripped[0].samples) == 32 and tripped[0].worst and tripped[0].worst[0][1] > 100
    assert rolled[0].step < rolled[0].from_step == tripped[0].step and rolled[0].skipped == [list(BAD)]
    table = rows(done)
    guard = [r for r in table if r["type"] == "guard"]
    assert guard == [{"type": "guard", "step": rolled[0].step, "action": "rollback", "tripped": tripped[0].step,
                      "kind": "loss_spike", "reason": tripped[0].reason, "skipped": [list(BAD)]}]
    steps = [r["step"] for r in table if r["type"] == "step"]
    assert steps == sorted(set(steps))  # the rolled-back steps were dropped, then trained again once
    assert max(r["loss"] for r in table if r["type"] == "step") < 10


def test_nan_batch_rolls_back_too(host, bad_batch):
    bad_batch["value"] = float("nan")
    seen, done = train(host, "rollback")
    assert done.state == p.FINISHED, done.summary
    assert [e.kind for e in of(seen, p.GuardTripped)] == ["nonfinite"]
    assert done.summary["val"]["accuracy"] > 0.95


def test_ask_pauses_and_halve_lr_rolls_back_with_half_the_lr(host, bad_batch):
    seen, done = train(host, "ask", answer="halve_lr")
    assert done.state == p.FINISHED, done.summary
    rolled = of(seen, p.RolledBack)[0]
    assert rolled.action == "halve_lr" and rolled.changes["lr"][1] == pytest.approx(rolled.changes["lr"][0] / 2)
    change = of(seen, p.HparamsChanged)[0]
    assert change.step == rolled.step and change.changes["lr"][1] == pytest.approx(0.005)
    kinds = [(r["type"], r.get("action")) for r in rows(done) if r["type"] in ("guard", "hparams")]
    assert kinds == [("guard", "halve_lr"), ("hparams", None)]
    states = [e.state for e in of(seen, p.StateChanged)]
    assert states[:3] == [p.RUNNING, p.PAUSED, p.RUNNING]


def test_ask_continue_goes_on_as_it_was(host, bad_batch):
    seen, done = train(host, "ask", answer="continue")
    assert not of(seen, p.RolledBack)
    guard = [r for r in rows(done) if r["type"] == "guard"]
    tripped = of(seen, p.GuardTripped)[0]
    assert [(r["action"], r["step"], r["skipped"]) for r in guard] == [("continue", tripped.step, [])]


def test_a_rollback_drops_what_was_drawn_after_it():
    """RunHistory (what the server sends and the charts draw) forgets the points after a RolledBack's step and
    marks it; Series.truncate_after is exact on the raw level and keeps the extremes past it."""
    from tests.tui.test_history import started, stats
    from torchtui.engine.history import RunHistory
    from torchtui.engine.history.series import Series

    history = RunHistory()
    history.apply(started())
    history.apply(stats(list(range(1, 41))))
    history.apply(p.RolledBack(started().run_id, 25, 31, "loss spike at step 31", "rollback", [[1, 5]]))
    assert history.train_loss.last[0] == 25 and len(history.train_loss) == 25
    assert history.lr.last[0] == 25 and history.markers[-1] == (25, "↺ rollback")
    history.apply(stats(list(range(26, 31))))
    assert history.train_loss.last[0] == 30

    long = Series(cap=64)
    long.extend(range(1000), [float(i % 97) for i in range(1000)])
    long.truncate_after(500)
    xs, ys = long.downsample(10)
    assert long.last[0] <= 500 and max(xs) <= 500 and max(ys) == 96.0


def test_guard_modes_and_the_data_parallel_refusal():
    """auto is ask in the app and rollback headless; data parallel (no snapshots): auto is off, and ask or
    rollback are refused naming train.guard, as a rewind is naming the reason."""
    from types import SimpleNamespace

    from torchtui.engine.config import from_dict
    from torchtui.engine.run.guard import resolve_mode
    from torchtui.engine.run.rewind import refusal
    from torchtui.engine.schema import ConfigError

    plain = from_dict(CONFIG)
    assert (resolve_mode(plain, True, False), resolve_mode(plain, False, False)) == ("ask", "rollback")
    assert resolve_mode(from_dict(config("rollback") | {"train": {"snapshots": False}}), False, False) == "stop"
    ddp = {**CONFIG, "device": {"device": "cpu", "devices": 2}}
    assert resolve_mode(from_dict(ddp), True, True) == "off"
    with pytest.raises(ConfigError, match="train.guard: rollback rolls back to an in-memory snapshot, which "
                                          "data-parallel runs"):
        from_dict({**ddp, "train": {"guard": "rollback"}})
    rank = SimpleNamespace(dist=object(), run_id="r", session=None)
    assert refusal(rank, p.Rewind()).startswith("rewind: not available for data-parallel runs (device.devices)")


class Flushes:
    """A Guard fed flushes of losses by hand, on a stand-in run: `flush(first_step, losses)` is its check."""

    def __init__(self, loss_at_start: float | None = None):
        from types import SimpleNamespace

        from torchtui.engine.run.guard import Guard

        self.guard = Guard("rollback", 6.0, 3)
        self.run = SimpleNamespace(session=SimpleNamespace(pending=False), loss_at_start=loss_at_start)

    def __call__(self, first: int, losses: list):
        from types import SimpleNamespace

        out = SimpleNamespace(step=list(range(first, first + len(losses))), loss=losses, layer_steps=[],
                              grad_norm=[], bad_step=None)
        return self.guard.check(self.run, out, False)


def test_noise_near_zero_loss_is_no_spike_but_a_jump_is():
    """Late in a run the loss sits near zero with a tiny MAD: a blip from 0.005 to 0.066 has a z-score of ~14 but
    is noise (the circles preset tripped four rollbacks on such blips and ended diverged), and so is one hard
    batch halfway back (the app's moons run paused at step 5,314 on a 0.3); a jump back past where the run
    began is a spike."""
    flush = Flushes()
    assert flush(1, [0.7 - 0.03 * i for i in range(20)]) is None       # the run begins near 0.7 …
    assert flush(21, [0.005 + 0.0005 * (i % 3) for i in range(200)]) is None  # … and settles near 0.005
    assert flush(221, [0.005, 0.066, 0.005]) is None
    assert flush(224, [0.005, 0.3]) is None  # one hard batch, not back where the run began (moons, step 5,314)
    assert flush(226, [0.005, 0.8]) == 227 and flush.guard.trip.kind == "loss_spike" and flush.run.session.pending


def test_a_resumed_run_s_guard_calls_a_spike_only_at_ten_times_its_median():
    """A run resumed at step 20,235 (the app's stop-then-resume test): the guard's first values were already
    near 0.06, so 'back where the run began' meant twice the median, and one hard batch (0.35) paused it."""
    flush = Flushes()
    assert flush(20_236, [0.06 + 0.01 * (i % 3) for i in range(200)]) is None
    assert flush(20_436, [0.06, 0.35, 0.06]) is None
    assert flush(20_439, [0.06, 0.9]) == 20_440 and flush.guard.trip.kind == "loss_spike"

    # A checkpoint written since keeps where the run began (0.69): near zero, the guard judges by it again.
    flush = Flushes(loss_at_start=0.69)
    assert flush(30_000, [0.004 + 0.001 * (i % 3) for i in range(200)]) is None
    assert flush(30_200, [0.004, 0.05, 0.004]) is None   # 10x the median, a tenth of the way back: noise
    assert flush(30_203, [0.004, 0.9]) == 30_204 and flush.guard.trip.kind == "loss_spike"


def test_a_spike_in_the_flush_that_fills_the_window_is_called():
    """A loaded machine's first flush can hold the run's first 60 steps: the guard took the median once per flush
    and, the window not full at its start, judged none of them, so a bad batch at step 53 went by (the app's
    guard test, tests/tui/test_rewind.py, timed out waiting for the question in the full suite)."""
    losses = [0.7 - 0.005 * i for i in range(60)]
    losses[52] = 5e4  # step 53: a batch scaled by 1e6
    flush = Flushes()
    assert flush(1, losses) == 53 and flush.guard.trip.kind == "loss_spike"
