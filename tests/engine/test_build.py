"""Losses, optimizers, schedulers (with warm-up and live lr scaling), clipping and accumulation."""

import math

import pytest
import torch

from torchtui.engine import protocol as p
from torchtui.engine.config import LOSSES, OPTIMIZERS, SCHEDULERS, TrainConfig
from torchtui.engine.host import InProcessHost
from torchtui.engine.run import optim as build

from .helpers import of, run_to_end, tiny


@pytest.mark.parametrize("name", [n for n in LOSSES if n != "auto"])
def test_every_loss_gives_a_finite_differentiable_value(name):
    task = "regression" if name in ("mse", "l1", "smooth_l1", "huber") else "binary" if name == "bce_with_logits" \
        else "multiclass"
    out = torch.randn(8, 1 if task != "multiclass" else 3, requires_grad=True)
    y = {"regression": torch.randn(8, 1), "binary": torch.randint(0, 2, (8,)),
         "multiclass": torch.randint(0, 3, (8,))}[task]
    loss = build.make_loss(name, TrainConfig(), task)(out, y)
    loss.backward()
    assert loss.dim() == 0 and math.isfinite(loss.item()) and out.grad is not None


@pytest.mark.parametrize("name", OPTIMIZERS)
def test_every_optimizer_steps(name):
    spec = build.OPTIMIZERS[name]
    w = torch.nn.Parameter(torch.ones(3, 3))  # a matrix, as muon needs
    opt = build.make_optimizer([w], TrainConfig(optimizer=name, lr=0.1, momentum=0.5 if name == "sgd" else 0.0))

    def closure():  # lbfgs re-evaluates; sparse_adam needs the sparse gradient of an embedding lookup
        opt.zero_grad()
        rows = torch.nn.functional.embedding(torch.arange(3), w, sparse=True) if spec.sparse else w
        loss = (rows ** 2).sum()
        loss.backward()
        return loss

    closure()
    opt.step(closure) if spec.closure else opt.step()
    assert (w < 1).all()


def lrs(cfg: TrainConfig, steps_per_epoch=5, scale_at=None):
    w = torch.nn.Parameter(torch.ones(1))
    opt = build.make_optimizer([w], cfg)
    sched, plateau = build.make_scheduler(opt, cfg, steps_per_epoch)
    out = []
    for step in range(cfg.epochs * steps_per_epoch):
        if step == scale_at:
            build.scale_lr(opt, sched, plateau, 2.0)
        out.append(opt.param_groups[0]["lr"])
        opt.step()
        if sched is not None:
            sched.step()
    return out


@pytest.mark.parametrize("name", SCHEDULERS)
@pytest.mark.parametrize("warmup", [0, 7])
def test_schedules_stay_positive_and_scale_live(name, warmup):
    cfg = TrainConfig(scheduler=name, epochs=6, lr=0.1, step_size=2, milestones=[2, 4], gamma=0.5,
                      warmup_steps=warmup)
    plain = lrs(cfg)
    assert all(v > 0 and math.isfinite(v) for v in plain)
    if warmup and name != "onecycle":
        assert plain[0] < plain[warmup] and plain[warmup] == pytest.approx(0.1)
    scaled = lrs(cfg, scale_at=12)
    assert scaled[:12] == plain[:12]
    # a live ×2 persists through the rest of the schedule instead of being overwritten
    assert scaled[12:] == pytest.approx([2 * v for v in plain[12:]], rel=1e-6)


def test_step_schedule_counts_epochs():
    values = lrs(TrainConfig(scheduler="step", epochs=4, lr=1.0, step_size=2, gamma=0.1), steps_per_epoch=3)
    assert values[5] == pytest.approx(1.0) and values[6] == pytest.approx(0.1)


@pytest.fixture
def local(tmp_path):
    with InProcessHost(str(tmp_path / "runs")) as h:
        yield h


def test_accumulation_halves_optimizer_steps(local):
    events, done = run_to_end(local, tiny(epochs=1, accumulate=2))
    started = of(events, p.RunStarted)[0]
    assert started.steps_per_epoch == 4 and done.summary["steps"] == 4  # 7 batches of 32 → 4 optimizer steps


@pytest.mark.parametrize("mode", ["norm", "value"])
def test_clipping_runs_and_the_reported_norm_is_before_clipping(local, mode):
    events, done = run_to_end(local, tiny(epochs=1, grad_clip=1e-4, clip_mode=mode, stats_every=2))
    assert done.state == p.FINISHED
    norms = [v for e in of(events, p.StepStats) for v in e.grad_norm if not math.isnan(v)]
    assert len(norms) == 3  # sampled steps 2, 4, 6
    assert max(norms) > 1e-3  # the unclipped norm is what the chart shows


def test_epochs_longer_than_a_few_seconds_are_each_evaluated_whatever_the_evaluation_costs(monkeypatch):
    """eval_budget only thins out evaluations of short epochs: a 60 s epoch whose evaluation took 8 s (13 %,
    a 20 % val split evaluated forward only) was evaluated every third epoch, where a user expects val figures
    each epoch. Never more than EVAL_GAP_MAX_S of training between two evaluations."""
    from types import SimpleNamespace

    from torchtui.engine.run import loop

    now = 1000.0
    monkeypatch.setattr(loop.time, "perf_counter", lambda: now)
    train = SimpleNamespace(epochs=10, eval_budget=0.05, early_stop_metric="")
    run = SimpleNamespace(config=SimpleNamespace(train=train), epoch=3, plateau=None, dist=None,
                          eval_ended=now - 60.0, eval_cost=8.0)
    assert loop.epoch_evaluation_due(run)  # 60 s of training since the last one: due, though 8 s is over 5 %
    run.eval_ended, run.eval_cost = now - 0.05, 0.004  # a short epoch: the budget still thins them out
    assert not loop.epoch_evaluation_due(run)
    run.eval_ended = now - loop.EVAL_GAP_MAX_S
    assert loop.epoch_evaluation_due(run)


def test_eval_every_adds_evaluations(local):
    events, _ = run_to_end(local, tiny(epochs=1, eval_every=2))
    assert [e.step for e in of(events, p.EvalResult) if e.split == "val"] == [2, 4, 6, 7]


def test_short_epochs_are_evaluated_within_the_time_budget_and_the_last_always(local):
    """eval_budget: 7-step epochs take a few ms, their evaluation about as long: with a 5 % budget most
    epochs go unevaluated (the last one never), and every one is with the budget off, a plateau schedule or
    early stopping (they decide on each evaluation, so what trains never depends on the machine's speed)."""
    epochs = 60
    events, done = run_to_end(local, tiny(epochs=epochs, eval_budget=0.05))
    evaluated = [e.epoch for e in of(events, p.EvalResult) if e.split == "val"]
    assert done.state == p.FINISHED and evaluated[0] == 1 and evaluated[-1] == epochs
    assert len(evaluated) < epochs // 2 and evaluated == sorted(set(evaluated))
    for every in ({"eval_budget": 0.0}, {"scheduler": "plateau"}, {"early_stop_metric": "loss",
                                                                   "early_stop_patience": 1000}):
        events, _ = run_to_end(local, tiny(epochs=12, **every))
        assert [e.epoch for e in of(events, p.EvalResult) if e.split == "val"] == list(range(1, 13)), every
