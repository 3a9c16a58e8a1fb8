"""Every torch.optim optimizer by name: training through the real engine, optimizer_args validation, L-BFGS's
closure, SparseAdam's sparse gradients, Muon's matrices, and live changes they cannot take."""

from __future__ import annotations

import math
import textwrap

import pytest
import torch

from torchtui.engine import protocol as p
from torchtui.engine.config import ExperimentConfig, TrainConfig, from_dict
from torchtui.engine.host import InProcessHost
from torchtui.engine.run import optim
from torchtui.engine.schema import ConfigError

from .helpers import of, run_to_end, tiny

# Custom models for the optimizers that need them: every gradient sparse (sparse_adam), 2-D weights only (muon).
MODELS = textwrap.dedent('''
    import torch
    from torch import nn


    class Bins(nn.Module):
        """Each feature cut into bins, each bin a learned output row: sparse gradients only."""

        def __init__(self, in_features, out_features, bins=16):
            super().__init__()
            self.bins, self.in_features = bins, in_features
            self.table = nn.EmbeddingBag(bins * in_features, out_features, mode="sum", sparse=True)

        def forward(self, x):
            idx = ((x + 2) * self.bins / 5).long().clamp(0, self.bins - 1)
            return self.table(idx + torch.arange(self.in_features, device=x.device) * self.bins)


    class NoBias(nn.Module):
        def __init__(self, in_features, out_features):
            super().__init__()
            self.a = nn.Linear(in_features, 32, bias=False)
            self.b = nn.Linear(32, out_features, bias=False)

        def forward(self, x):
            return self.b(torch.relu(self.a(x)))
''')
# lr per optimizer where the default 0.01 of `tiny` would barely move in a few steps
LR = {"sgd": 0.2, "asgd": 0.2, "adadelta": 1.0, "lbfgs": 1.0, "adagrad": 0.1, "radam": 0.03, "sparse_adam": 0.05,
      "adafactor": 0.05, "muon": 0.05}


@pytest.fixture
def local(tmp_path):
    with InProcessHost(str(tmp_path / "runs")) as h:
        yield h


@pytest.fixture
def models_file(tmp_path):
    path = tmp_path / "models.py"
    path.write_text(MODELS)
    return path


def config_for(name: str, models_file, **train) -> dict:
    spec = optim.OPTIMIZERS[name]
    extra = {"optimizer_args": {"max_iter": 5}} if spec.closure else {"momentum": 0.9} if name == "muon" else {}
    config = tiny(optimizer=name, lr=LR.get(name, 0.01), **{**extra, **train})
    if spec.sparse or spec.matrices:
        config["model"] = {"kind": "custom", "module": f"{models_file}:{'Bins' if spec.sparse else 'NoBias'}"}
    return config


def losses_of(events) -> list[float]:
    return [v for e in of(events, p.StepStats) for v in e.loss]


@pytest.mark.parametrize("name", list(optim.OPTIMIZERS))
def test_every_optimizer_trains_through_the_engine(local, models_file, name):
    events, done = run_to_end(local, config_for(name, models_file))
    assert done is not None and done.state == p.FINISHED, [e.message for e in of(events, p.Error)]
    losses = losses_of(events)
    assert len(losses) == done.summary["steps"] > 10 and all(math.isfinite(v) for v in losses)
    first, last = sum(losses[:4]) / 4, sum(losses[-4:]) / 4
    assert last < first, (first, last)


def test_adadelta_trains_a_small_model_like_the_mnist_example(local):
    # pytorch/examples' MNIST script: Adadelta at lr 1.0 (its own rho 0.9 and eps 1e-6 by default).
    config = tiny("digits", optimizer="adadelta", lr=1.0, epochs=4, optimizer_args={"rho": 0.9})
    config["data"] = {"source": "digits"}
    config["model"] = {"layers": [64]}
    _, done = run_to_end(local, config)
    assert done.state == p.FINISHED
    assert done.summary["val"]["accuracy"] > 0.85


def test_optimizer_args_reach_torch():
    w = torch.nn.Parameter(torch.ones(2, 2))
    opt = optim.make_optimizer([w], TrainConfig(optimizer="adadelta", optimizer_args={"rho": 0.95}))
    assert isinstance(opt, torch.optim.Adadelta)
    assert opt.param_groups[0]["rho"] == 0.95 and opt.param_groups[0]["eps"] == 1e-6  # torch's default eps
    opt = optim.make_optimizer([w], TrainConfig(optimizer="lbfgs", optimizer_args={"line_search_fn": "strong_wolfe",
                                                                                  "max_iter": 3.0}))
    assert opt.param_groups[0]["line_search_fn"] == "strong_wolfe" and opt.param_groups[0]["max_iter"] == 3
    assert optim.make_optimizer([w], TrainConfig(optimizer="lbfgs")).param_groups[0]["line_search_fn"] is None
    opt = optim.make_optimizer([w], TrainConfig(optimizer="rprop", optimizer_args={"etas": [0.4, 1.5]}))
    assert opt.param_groups[0]["etas"] == (0.4, 1.5)
    # YAML 1.1 reads 1e-3 (no dot) as text: accepted like every other float field
    config = from_dict({"train": {"optimizer": "asgd", "optimizer_args": {"lambd": "1e-3"}}})
    assert optim.make_optimizer([w], config.train).param_groups[0]["lambd"] == 1e-3


def problems(train: dict, device: dict | None = None) -> list[str]:
    try:
        from_dict({"train": train, **({"device": device} if device else {})})
    except ConfigError as err:
        return err.problems
    return []


@pytest.mark.parametrize(("train", "expected"), [
    ({"optimizer": "adadelta", "optimizer_args": {"rhoo": 0.9}},
     "train.optimizer_args.rhoo: adadelta takes no 'rhoo' (did you mean 'rho'? it takes: rho, eps)"),
    ({"optimizer": "adadelta", "optimizer_args": {"rho": 1.5}},
     "train.optimizer_args.rho: must be a number at least 0 and at most 1, got 1.5"),
    ({"optimizer": "adadelta", "optimizer_args": {"rho": "high"}},
     "train.optimizer_args.rho: must be a number at least 0 and at most 1, got 'high'"),
    ({"optimizer": "lbfgs", "optimizer_args": {"max_iter": 2.5}},
     "train.optimizer_args.max_iter: must be a whole number at least 1 and at most 10000, got 2.5"),
    ({"optimizer": "lbfgs", "optimizer_args": {"line_search_fn": "wolfe"}},
     "train.optimizer_args.line_search_fn: unknown 'wolfe' (choose one of: none, strong_wolfe)"),
    ({"optimizer": "adam", "optimizer_args": {"amsgrad": 1}},
     "train.optimizer_args.amsgrad: must be true or false, got 1"),
    ({"optimizer": "rprop", "optimizer_args": {"etas": [1.5, 2.0]}},
     "train.optimizer_args.etas: must be [decrease, increase] with 0 < decrease < 1 < increase, got [1.5, 2.0]"),
    ({"optimizer": "adamax", "optimizer_args": {"rho": 0.9}},
     ("train.optimizer_args.rho: adamax takes no optimizer_args (remove 'rho'; its settings are the train fields "
      "lr, betas, eps, weight_decay)")),
    ({"optimizer": "sgd", "optimizer_args": {"momentum": 0.9}},
     "train.optimizer_args.momentum: 'momentum' is a train field, not an optimizer argument (set train.momentum)"),
    ({"optimizer": "sgd", "optimizer_args": "rho"},
     "train.optimizer_args: must be a mapping of names to values, got 'rho'"),
    ({"optimizer": "lbfgs", "weight_decay": 0.1},
     "train.weight_decay: lbfgs has no weight decay (set 0, or use an optimizer that has it, e.g. adamw)"),
    ({"optimizer": "lbfgs", "accumulate": 2}, "train.accumulate: lbfgs re-evaluates the loss on one batch"),
    ({"optimizer": "lbfgs", "grad_clip": 1.0}, "train.grad_clip: lbfgs builds its steps from the history of true"),
    ({"optimizer": "sparse_adam", "grad_clip": 1.0},
     "train.grad_clip: sparse_adam's sparse gradients cannot be clipped (set 0)"),
    ({"optimizer": "adam", "nesterov": True, "momentum": 0.9},
     "train.nesterov: needs optimizer 'sgd' or 'muon' with momentum > 0"),
])
def test_optimizer_settings_are_validated_with_the_field_and_the_fix(train, expected):
    found = problems(train)
    assert len(found) == 1 and found[0].startswith(expected), found


def test_lbfgs_refuses_fp16_naming_the_device_field():
    (problem,) = problems({"optimizer": "lbfgs"}, {"precision": "fp16"})
    assert problem.startswith("device.precision: fp16's gradient scaler cannot drive lbfgs")
    assert problems({"optimizer": "lbfgs"}, {"precision": "bf16"}) == []


def test_optimizer_args_round_trip_and_default_to_empty():
    assert ExperimentConfig().train.optimizer_args == {}
    config = from_dict({"train": {"optimizer": "nadam", "optimizer_args": {"momentum_decay": 0.01}}})
    assert from_dict(config.to_dict()) == config
    assert "optimizer_args:\n    momentum_decay: 0.01" in config.to_yaml()


def test_lbfgs_reevaluates_the_batch_under_bf16_with_a_line_search(local, models_file):
    config = config_for("lbfgs", models_file, epochs=2,
                        optimizer_args={"max_iter": 5, "line_search_fn": "strong_wolfe"})
    events, done = run_to_end(local, config | {"device": {"device": "cpu", "precision": "bf16"}})
    assert done.state == p.FINISHED, [e.message for e in of(events, p.Error)]
    losses = losses_of(events)
    assert all(math.isfinite(v) for v in losses) and losses[-1] < losses[0]


def test_sparse_adam_refuses_dense_gradients_naming_a_parameter(local):
    events, done = run_to_end(local, tiny(optimizer="sparse_adam"))
    assert done.state == p.FAILED
    (error,) = of(events, p.Error)
    assert "train.optimizer: sparse_adam takes sparse gradients only" in error.message
    assert ".weight'" in error.message and "use adam" in error.message


def test_muon_refuses_a_model_with_biases_before_training(local):
    events, done = run_to_end(local, tiny(optimizer="muon"))
    assert done is None  # refused at start: no run
    (error,) = of(events, p.Error)
    assert error.message.startswith("train.optimizer: muon updates 2-D weight matrices only")
    assert "Linear(bias=False)" in error.message


def test_live_weight_decay_is_refused_for_an_optimizer_without_it(local, models_file):
    seen: list = []
    local.send(p.Start(config=config_for("lbfgs", models_file, epochs=500)))
    local.wait_for(lambda e: isinstance(e, p.StepStats), seen=seen)
    local.send(p.Pause())
    local.wait_for(lambda e: isinstance(e, p.StateChanged) and e.state == p.PAUSED, seen=seen)
    local.send(p.SetHparams(weight_decay=0.1))
    error = local.wait_for(lambda e: isinstance(e, p.Error), seen=seen)
    assert error.message == ("live change refused: train.weight_decay: lbfgs has no weight decay (set 0, or use an "
                             "optimizer that has it, e.g. adamw)")
    local.send(p.SetHparams(grad_clip=1.0))
    error = local.wait_for(lambda e: isinstance(e, p.Error), seen=seen)
    assert error.message.startswith("live change refused: train.grad_clip: lbfgs builds its steps from the history")
    local.send(p.SetHparams(lr=0.5))  # the lr still changes live
    change = local.wait_for(lambda e: isinstance(e, p.HparamsChanged), seen=seen)
    assert change.changes == {"lr": [pytest.approx(1.0), pytest.approx(0.5)],
                              "base_lr": [pytest.approx(1.0), pytest.approx(0.5)]}
    local.send(p.Stop())
    local.wait_for(lambda e: isinstance(e, p.RunFinished), seen=seen)
    assert [e.changes for e in seen if isinstance(e, p.HparamsChanged)] == [change.changes]
