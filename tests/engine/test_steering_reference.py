"""Live steering checked against a plain PyTorch loop that replays the same changes (issue: steering you can trust).

The engine trains a tiny MLP while a random plan of live changes lands at chosen steps (lr set, ×2 and ÷2,
weight decay, clip, some of them invalid), with a stop and a resume whose config.yaml has an edited base lr.
The reference is written here from torch alone: torch.optim, torch's own lr schedulers (stepped on a shadow
optimizer that holds the schedule at the base lr), `clip_grad_norm_`, and the rule the README states: a live
change multiplies the whole schedule by one factor (new base ÷ old base, or the ×2/÷2 asked for); an invalid
change changes nothing. The lr of every step (metrics.jsonl) and the final weights must agree to 1e-6.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from torch.optim import lr_scheduler as S

from torchtui.engine import protocol as p
from torchtui.engine.config import from_dict
from torchtui.engine.data.batches import epoch_permutation
from torchtui.engine.host import InProcessHost
from torchtui.engine.run.prepare import build_data_and_model

# The shadow optimizer that carries the reference's schedule never steps: torch warns about that order.
pytestmark = pytest.mark.filterwarnings("ignore:Detected call of `lr_scheduler.step()` before")

EPOCHS, BATCH, SAMPLES = 4, 32, 200
STEPS = 20  # 140 train samples (the default 70/20/10 split): 5 batches an epoch
SCHEDULES = ["none", "step", "multistep", "exponential", "cosine", "onecycle", "plateau"]


def setup(scheduler: str, warmup: int, optimizer: str) -> dict:
    train = {"optimizer": optimizer, "lr": 0.02, "batch_size": BATCH, "epochs": EPOCHS, "scheduler": scheduler,
             "warmup_steps": warmup, "step_size": 1, "milestones": [1, 3], "gamma": 0.5, "min_lr": 0.001,
             "plateau_patience": 1, "weight_decay": 0.0, "grad_clip": 0.0, "checkpoint_every": 0}
    if optimizer == "sgd":
        train["momentum"] = 0.9
    return {"name": "steer", "data": {"source": "moons", "n_samples": SAMPLES, "noise": 0.2},
            "model": {"layers": [16, 16]}, "train": train, "device": {"device": "cpu"}}


# A change: ("lr", base) | ("scale", k) | ("wd", v) | ("clip", v) | ("lr+wd", base, v); invalid values among them.
CHANGES = st.one_of(
    st.tuples(st.just("lr"), st.sampled_from([0.005, 0.01, 0.04, 0.08, 0.0, -0.1, math.nan, math.inf, 1e39])),
    st.tuples(st.just("scale"), st.sampled_from([2.0, 0.5, 0.0])),
    st.tuples(st.just("wd"), st.sampled_from([0.0, 1e-3, 1e-2, -0.5])),
    st.tuples(st.just("clip"), st.sampled_from([0.0, 0.5, 1.0, -1.0])),
    st.tuples(st.just("lr+wd"), st.sampled_from([0.01, 0.03]), st.sampled_from([1e-3, -1.0])),
)


def command(change) -> p.SetHparams:
    kind = change[0]
    if kind == "lr":
        return p.SetHparams(lr=change[1])
    if kind == "scale":
        return p.SetHparams(lr_scale=change[1])
    if kind == "wd":
        return p.SetHparams(weight_decay=change[1])
    if kind == "clip":
        return p.SetHparams(grad_clip=change[1])
    return p.SetHparams(lr=change[1], weight_decay=change[2])


def valid(change) -> bool:
    values = list(change[1:])
    if any(not math.isfinite(v) or v < 0 for v in values):
        return False
    if change[0] in ("lr", "scale", "lr+wd") and (values[0] <= 0 or values[0] > 3.4e38):
        return False
    return True


# ---------------------------------------------------------------- the engine, driven between steps


class Driver:
    """The engine in this process, started paused; steps, changes and a stop/resume land at exact steps."""

    def __init__(self, host: InProcessHost):
        self.host, self.step, self.asks = host, 0, 0
        self.errors: list[str] = []

    def start(self, **start) -> p.RunStarted:
        self.host.send(p.Start(**start))
        self.host.send(p.Pause())
        seen: list = []
        started = self.host.wait_for(lambda e: isinstance(e, p.RunStarted) or
                                     (isinstance(e, p.StateChanged) and e.state == p.FAILED), timeout=60, seen=seen)
        assert isinstance(started, p.RunStarted), [e for e in seen if isinstance(e, p.Error)]
        self.host.wait_for(lambda e: isinstance(e, p.StateChanged) and e.state == p.PAUSED, timeout=60)
        return started

    def barrier(self) -> list:
        """Every event up to the reply of a request sent now: the commands before it have been applied."""
        self.asks += 1
        ask = self.asks
        self.host.send(p.ListDevices(request_id=ask))
        seen: list = []
        self.host.wait_for(lambda e: isinstance(e, p.DevicesListed) and e.request_id == ask, timeout=60, seen=seen)
        self.errors += [e.message for e in seen if isinstance(e, p.Error)]
        return seen

    def steps_to(self, target: int) -> None:
        if target > self.step:
            self.host.send(p.Step(n=target - self.step))
            self.host.wait_for(lambda e: isinstance(e, p.StepStats) and e.step and e.step[-1] >= target, timeout=60)
            self.step = target

    def change(self, change) -> list:
        self.host.send(command(change))
        return self.barrier()

    def stop(self) -> p.RunFinished:
        self.host.send(p.Stop())
        return self.host.wait_for(lambda e: isinstance(e, p.RunFinished), timeout=60)

    def finish(self) -> p.RunFinished:
        self.host.send(p.Resume())
        return self.host.wait_for(lambda e: isinstance(e, p.RunFinished), timeout=120)


def drive(tmp_path: Path, config: dict, plan: dict[int, list], resume_at: int, resume_lr: float):
    """Train `config` applying `plan` ({steps done: [change, …]}) and a stop + resume (with train.lr edited to
    `resume_lr` in the config) at `resume_at`; returns (lr per step, final weights, refusal messages)."""
    host = InProcessHost(str(tmp_path / "runs"))
    try:
        host.wait_for(lambda e: isinstance(e, p.EngineReady), timeout=60)
        driver = Driver(host)
        started = driver.start(config=config)
        for at in sorted({*plan, resume_at}):
            driver.steps_to(at)
            if at == resume_at:
                assert driver.stop().state == p.STOPPED
                edited = json.loads(json.dumps(config))
                edited["train"]["lr"] = resume_lr
                driver.start(config=edited, resume=started.run_dir)
                driver.barrier()
            for change in plan.get(at, []):
                driver.change(change)
        done = driver.finish()
    finally:
        host.close()
    assert done.state == p.FINISHED, done.summary
    rows = [json.loads(line) for line in (Path(started.run_dir) / "metrics.jsonl").read_text().splitlines()]
    lrs = {r["step"]: r["lr"] for r in rows if r["type"] == "step"}
    weights = torch.load(Path(started.run_dir) / "checkpoints" / "last.pt", weights_only=True)["model"]
    return [lrs[s] for s in sorted(lrs)], weights, driver.errors


# ---------------------------------------------------------------- the reference: torch alone


def schedule(shadow: torch.optim.Optimizer, train: dict, per_epoch: int):
    """torch's scheduler for the setup, on the shadow optimizer (warm-up first where asked)."""
    total, warm = train["epochs"] * per_epoch, train["warmup_steps"]
    name, gamma = train["scheduler"], train["gamma"]
    main = {
        "none": lambda: None,
        "step": lambda: S.StepLR(shadow, train["step_size"] * per_epoch, gamma=gamma),
        "multistep": lambda: S.MultiStepLR(shadow, [max(1, m * per_epoch - warm) for m in train["milestones"]],
                                           gamma=gamma),
        "exponential": lambda: S.ExponentialLR(shadow, gamma=gamma ** (1.0 / per_epoch)),
        "cosine": lambda: S.CosineAnnealingLR(shadow, T_max=total - warm, eta_min=train["min_lr"]),
        "onecycle": lambda: S.OneCycleLR(shadow, max_lr=train["lr"], total_steps=total,
                                         pct_start=warm / total if warm else 0.3),
        "plateau": lambda: None,
    }[name]()
    plateau = (S.ReduceLROnPlateau(shadow, factor=gamma, patience=train["plateau_patience"], min_lr=train["min_lr"])
               if name == "plateau" else None)
    if warm and name != "onecycle":
        warmup = S.LinearLR(shadow, start_factor=1.0 / (warm + 1), total_iters=warm)
        main = warmup if main is None else S.SequentialLR(shadow, [warmup, main], milestones=[warm])
    return main, plateau


def reference(config: dict, plan: dict[int, list], resume_at: int, resume_lr: float):
    """The same training in a plain loop; returns (lr per step, final weights)."""
    cfg = from_dict(config)
    train = config["train"]
    torch.manual_seed(cfg.train.seed)
    splits, model, _, _, _ = build_data_and_model(cfg)  # the data and the initial weights; the rest is torch's
    x, y, xv, yv = splits.x_train, splits.y_train, splits.x_val, splits.y_val
    kwargs = {"momentum": train["momentum"]} if train["optimizer"] == "sgd" else {}
    opt = {"sgd": torch.optim.SGD, "adam": torch.optim.Adam}[train["optimizer"]](
        model.parameters(), lr=train["lr"], weight_decay=train["weight_decay"], **kwargs)
    shadow = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=train["lr"])
    per_epoch = -(-len(x) // BATCH)
    assert per_epoch * train["epochs"] == STEPS
    sched, plateau = schedule(shadow, train, per_epoch)
    base, clip, step, lrs = train["lr"], 0.0, 0, []

    def loss_of(out, target):
        return F.binary_cross_entropy_with_logits(out.squeeze(1), target.to(out.dtype))

    def apply(change):
        nonlocal base, clip
        if not valid(change):
            return
        kind = change[0]
        if kind in ("lr", "lr+wd"):
            base = change[1]
        if kind == "scale":
            base *= change[1]
        if kind in ("wd", "lr+wd"):
            for group in opt.param_groups:
                group["weight_decay"] = change[-1]
        if kind == "clip":
            clip = change[1]

    for epoch in range(train["epochs"]):
        model.train()
        order = epoch_permutation(len(x), cfg.train.seed, epoch, "cpu")
        for start in range(0, len(x), BATCH):
            if step == resume_at:
                base = resume_lr
            for change in plan.get(step, []):
                apply(change)
            lr = shadow.param_groups[0]["lr"] * base / train["lr"]  # the schedule, times the live factor
            for group in opt.param_groups:
                group["lr"] = lr
                if train["scheduler"] == "onecycle":  # it cycles the momentum (Adam's beta1) against the lr
                    momentum = shadow.param_groups[0]["momentum"]
                    if "betas" in group:
                        group["betas"] = (momentum, group["betas"][1])
                    else:
                        group["momentum"] = momentum
            idx = order[start:start + BATCH]
            loss = loss_of(model(x[idx]), y[idx])
            loss.backward()
            if clip > 0:
                torch.nn.utils.clip_grad_norm_(model.parameters(), clip, foreach=True)
            opt.step()
            opt.zero_grad(set_to_none=True)
            if sched is not None:
                sched.step()
            lrs.append(lr)
            step += 1
        if plateau is not None:
            model.eval()
            with torch.no_grad():
                plateau.step(float(loss_of(model(xv), yv)))
    return lrs, model.state_dict()


# ---------------------------------------------------------------- the property

PLANS = st.dictionaries(st.integers(0, STEPS - 1), st.lists(CHANGES, min_size=1, max_size=2), max_size=4)


def check(tmp_path, scheduler, warmup, optimizer, plan, resume_at, resume_lr) -> None:
    config = setup(scheduler, warmup, optimizer)
    got_lrs, got_weights, errors = drive(tmp_path, config, plan, resume_at, resume_lr)
    want_lrs, want_weights = reference(config, plan, resume_at, resume_lr)
    assert len(got_lrs) == len(want_lrs)
    for step, (got, want) in enumerate(zip(got_lrs, want_lrs), 1):
        assert got == pytest.approx(want, rel=1e-6, abs=1e-12), f"lr of step {step}"
    gap = max(float((got_weights[k] - want_weights[k]).abs().max()) for k in want_weights)
    assert gap <= 1e-6
    refused = sum(not valid(c) for changes in plan.values() for c in changes)
    assert len(errors) == refused and all(e.startswith("live change refused: train.") or
                                          e.startswith("live change refused: lr") for e in errors), errors


@pytest.mark.parametrize("warmup", [0, 5])
@pytest.mark.parametrize("scheduler", SCHEDULES)
# No shrinking: each example is a whole run; a failure prints its plan, which is short already.
@settings(max_examples=3, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture],
          phases=[Phase.explicit, Phase.reuse, Phase.generate])
@given(plan=PLANS, resume_at=st.integers(1, STEPS - 1), resume_lr=st.sampled_from([0.01, 0.04]),
       optimizer=st.sampled_from(["adam", "sgd"]))
def test_live_changes_match_a_plain_loop(tmp_path_factory, scheduler, warmup, plan, resume_at, resume_lr,
                                         optimizer):
    check(tmp_path_factory.mktemp("steer"), scheduler, warmup, optimizer, plan, resume_at, resume_lr)


@pytest.mark.parametrize("scheduler", ["cosine", "onecycle"])
def test_a_resume_edit_sets_the_base_the_schedule_continues_from(tmp_path, scheduler):
    """config.yaml's lr doubled at a resume: the rest of the schedule is twice the un-edited one (it was 3.06×
    when the edit was taken as new ÷ current lr)."""
    plan = {10: [("scale", 2.0)], 17: [("lr", -1.0), ("wd", 1e-3)]}
    check(tmp_path, scheduler, 5, "adam", plan, 14, 0.08)
