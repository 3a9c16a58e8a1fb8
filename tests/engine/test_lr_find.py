"""The LR range test: the curve and its suggestions, early stopping, a run left byte-identical, the CLI."""

import io
import json
import math
import os
import subprocess
import sys

import pytest
import torch

from torchtui.engine import protocol as p
from torchtui.engine.config import from_dict
from torchtui.engine.host import InProcessHost
from torchtui.engine.run import lr_find
from torchtui.engine.run.checkpoint import load_checkpoint

from .helpers import of, tiny


@pytest.fixture
def local(tmp_path):
    h = InProcessHost(str(tmp_path / "runs"))
    h.wait_for(lambda e: isinstance(e, p.EngineReady), timeout=60)
    yield h
    h.close()


def test_adam_on_moons_gives_an_increasing_curve_and_a_sensible_lr():
    curve = lr_find.for_config(from_dict(tiny(optimizer="adam")), steps=100)
    assert 30 <= len(curve.lrs) <= 100 and len(curve.losses) == len(curve.lrs) == len(curve.points)
    assert curve.lrs[0] == pytest.approx(1e-7) and all(b > a for a, b in zip(curve.lrs, curve.lrs[1:]))
    assert all(1e-7 * 0.999 <= lr <= 10.0 * 1.001 for lr in curve.lrs)
    assert all(math.isfinite(loss) for loss in curve.losses)
    assert curve.steepest is not None and curve.suggested == curve.steepest
    assert 1e-4 <= curve.suggested <= 1.0, curve.suggested
    assert curve.minimum == pytest.approx(curve.lrs[curve.losses.index(min(curve.losses))] / 10)
    # lr steps are evenly spaced on a log scale
    ratios = [b / a for a, b in zip(curve.lrs, curve.lrs[1:])]
    assert max(ratios) == pytest.approx(min(ratios))


def test_the_sweep_stops_when_the_loss_explodes():
    curve = lr_find.for_config(from_dict(tiny(optimizer="sgd", momentum=0.9)), start=1e-3, end=1e6, steps=100)
    assert curve.stopped, "a sweep up to lr 1e6 must blow up"
    assert len(curve.lrs) < 100 and "at lr" in curve.stopped
    assert all(math.isfinite(loss) for loss in curve.losses)


def test_smoothing_is_a_bias_corrected_ema_and_stops_at_four_times_the_best():
    smooth = lr_find.Smoother()
    assert smooth.add(2.0) == "" and smooth.value == pytest.approx(2.0)  # bias correction: no pull towards 0
    assert smooth.add(1.0) == "" and smooth.value == pytest.approx((0.98 * 0.02 * 2 + 0.02) / (1 - 0.98 ** 2))
    fast = lr_find.Smoother(beta=0.0)
    assert fast.add(1.0) == "" and fast.add(3.9) == "" and "exploded" in fast.add(4.1)
    assert "not finite" in lr_find.Smoother().add(float("nan"))


def test_suggestions_steepest_descent_and_minimum_over_ten():
    lrs = lr_find.lr_schedule(1e-6, 1.0, 61)
    # a loss that falls fastest at lr 1e-3 (a logistic step in log lr), lowest at 1e-1, then rises
    losses = [1.0 - 0.8 / (1 + math.exp(-3 * (math.log10(lr) + 3))) + (0.3 * (math.log10(lr) + 1) ** 2 if lr > 0.1
                                                                         else 0.0) for lr in lrs]
    steepest, minimum = lr_find.suggest(lrs, losses)
    assert steepest == pytest.approx(1e-3, rel=0.3)
    assert minimum == pytest.approx(lrs[losses.index(min(losses))] / 10)
    assert lr_find.suggest([], []) == (None, None)
    flat_lrs = lr_find.lr_schedule(1e-3, 1.0, 20)
    assert lr_find.suggest(flat_lrs, [1.0 + i * 0.01 for i in range(20)])[0] is None  # never falls: no steepest


@pytest.mark.parametrize("start,end,steps,field", [(0.0, 1.0, 100, "start"), (1.0, 0.5, 100, "end"),
                                                    (1e-6, 1.0, 2, "steps"), (float("nan"), 1.0, 100, "start")])
def test_a_bad_range_names_the_option(start, end, steps, field):
    problem = lr_find.check_range(start, end, steps)
    assert problem and problem.startswith(f"{field}:")


def state_of(path) -> dict:
    """What a checkpoint holds that the range test must not change, as bytes."""
    data = load_checkpoint(path)

    def raw(value):
        if isinstance(value, torch.Tensor):
            buffer = io.BytesIO()
            torch.save(value.clone(), buffer)
            return buffer.getvalue()
        if isinstance(value, dict):
            return {k: raw(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [raw(v) for v in value]
        return value

    return {k: raw(data[k]) for k in ("model", "optimizer", "scheduler", "step", "epoch", "batch_in_epoch", "rng")}


def test_mid_run_the_range_test_leaves_the_run_byte_identical_and_it_goes_on(local):
    seen = []
    config = tiny(epochs=500, optimizer="adam", scheduler="cosine")
    config["model"] = {"layers": [{"units": 16, "dropout": 0.2}, 16]}  # dropout draws from the global RNG
    local.send(p.Start(config=config))
    local.wait_for(lambda e: isinstance(e, p.StepStats), seen=seen)
    local.send(p.Pause())
    local.wait_for(lambda e: isinstance(e, p.StateChanged) and e.state == p.PAUSED, seen=seen)
    local.send(p.CheckpointNow())
    before_event = local.wait_for(lambda e: isinstance(e, p.CheckpointSaved), seen=seen)
    before = state_of(before_event.path)

    local.send(p.FindLr(steps=60, request_id=7))
    found = local.wait_for(lambda e: isinstance(e, p.LrFound), seen=seen, timeout=60)
    assert found.error == "" and found.request_id == 7
    assert found.run_id == before_event.run_id and found.step == before_event.step
    assert 20 <= len(found.points) <= 60 and found.suggested_lr is not None
    assert p.is_plain(vars(found))

    local.send(p.CheckpointNow())
    after = state_of(local.wait_for(lambda e: isinstance(e, p.CheckpointSaved), seen=seen).path)
    assert after == before  # weights, Adam moments and step counts, schedule, position in the epoch, RNG

    local.send(p.Step())
    stats = local.wait_for(lambda e: isinstance(e, p.StepStats), seen=seen)
    assert stats.step == [before_event.step + 1]
    local.send(p.Resume())  # running: the test lands between steps and the run keeps stepping
    local.send(p.FindLr(steps=20, request_id=8))
    during = local.wait_for(lambda e: isinstance(e, p.LrFound), seen=seen, timeout=60)
    assert during.error == "" and during.run_id == found.run_id
    local.wait_for(lambda e: isinstance(e, p.StepStats) and e.step[-1] > during.step, seen=seen)
    local.send(p.Stop())
    done = local.wait_for(lambda e: isinstance(e, p.RunFinished), seen=seen)
    assert done.state == p.STOPPED and not of(seen, p.Error)


def test_a_failure_inside_is_a_reply_and_the_run_goes_on(local, monkeypatch):
    def boom(*args, **kwargs):
        raise RuntimeError("the model blew up")

    monkeypatch.setattr(lr_find, "range_test", boom)
    seen = []
    local.send(p.Start(config=tiny(epochs=500)))
    local.wait_for(lambda e: isinstance(e, p.StepStats), seen=seen)
    local.send(p.Pause())
    local.wait_for(lambda e: isinstance(e, p.StateChanged) and e.state == p.PAUSED, seen=seen)
    local.send(p.FindLr(request_id=3))
    found = local.wait_for(lambda e: isinstance(e, p.LrFound), seen=seen)
    assert "RuntimeError: the model blew up" in found.error and "Traceback" in found.traceback
    assert found.points == [] and found.suggested_lr is None
    last = max(s for e in of(seen, p.StepStats) for s in e.step)
    local.send(p.Step())
    assert local.wait_for(lambda e: isinstance(e, p.StepStats), seen=seen).step == [last + 1]
    local.send(p.Stop())
    assert local.wait_for(lambda e: isinstance(e, p.RunFinished), seen=seen).state == p.STOPPED


def test_idle_the_engine_answers_from_the_config_and_survives_a_bad_one(local):
    local.send(p.FindLr(config=tiny(), steps=30, request_id=1))
    found = local.wait_for(lambda e: isinstance(e, p.LrFound))
    assert found.error == "" and found.run_id is None and 10 <= len(found.points) <= 30
    bad = tiny()
    bad["train"]["optimizer"] = "adamm"
    local.send(p.FindLr(config=bad, request_id=2))
    refused = local.wait_for(lambda e: isinstance(e, p.LrFound))
    assert refused.request_id == 2 and "train.optimizer" in refused.error and not refused.points
    local.send(p.FindLr(config=tiny(), steps=2, request_id=3))
    assert local.wait_for(lambda e: isinstance(e, p.LrFound)).error.startswith("steps:")
    local.send(p.ListDevices(request_id=4))  # the engine is still there
    assert local.wait_for(lambda e: isinstance(e, p.DevicesListed)).request_id == 4


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "torchtui.cli", "lr-find", *args], capture_output=True, text=True,
                          check=False, timeout=120, env=dict(os.environ), stdin=subprocess.DEVNULL)


def test_cli_json_last_line_and_a_bad_option():
    done = cli("moons", "--set", "data.n_samples=300", "--device", "cpu", "--steps", "40", "--json")
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert {"suggested_lr", "points"} <= set(result)
    assert 10 <= len(result["points"]) <= 40 and all(len(pt) == 2 for pt in result["points"])
    assert 1e-7 <= result["suggested_lr"] <= 10
    assert "suggested lr" in done.stderr  # the human report goes to stderr with --json
    bad = cli("moons", "--start", "-1", "--json")
    assert bad.returncode == 2 and "--start: must be a positive number" in bad.stderr
    assert "Traceback" not in bad.stderr and json.loads(bad.stdout.splitlines()[-1])["state"] == "rejected"


def test_a_flat_curve_suggests_a_tenth_of_where_the_loss_starts_to_rise():
    from torchtui.engine.run.lr_find import flat_until, lr_schedule, suggest

    lrs = lr_schedule(1e-7, 10, 100)
    noise = [0.004 * ((i * 7919) % 13 - 6) / 6 for i in range(100)]  # ± 0.4 % of batch noise
    losses = [0.1 + n if lr < 0.3 else 0.1 * (lr / 0.3) ** 2 for lr, n in zip(lrs, noise)]
    rise = flat_until(lrs, losses)
    assert rise is not None and 0.3 <= rise <= 0.5, rise
    falling = [2.0 - 0.015 * i for i in range(60)] + [1.1 + 0.2 * i for i in range(40)]
    assert flat_until(lrs, falling) is None and suggest(lrs, falling)[0] is not None


@pytest.mark.parametrize("optimizer", ["lbfgs", "sparse_adam"])
def test_optimizers_without_plain_steps_are_refused_by_name(optimizer):
    from torchtui.engine.config import from_dict
    from torchtui.engine.run.lr_find import for_config

    with pytest.raises(ValueError) as err:
        for_config(from_dict({**tiny(), "train": {**tiny()["train"], "optimizer": optimizer}}))
    assert "train.optimizer" in str(err.value) and optimizer in str(err.value)
