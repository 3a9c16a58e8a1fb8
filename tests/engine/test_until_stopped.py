"""train.epochs 0: a run that trains until it is stopped (issue 14 item 2)."""

import pytest

from torchtui.engine import protocol as p
from torchtui.engine.config import from_dict
from torchtui.engine.host import InProcessHost
from torchtui.engine.schema import ConfigError

from .helpers import of, tiny


def test_epochs_0_trains_past_any_length_until_stopped(tmp_path):
    host = InProcessHost(str(tmp_path / "runs"))
    try:
        config = tiny(epochs=0)
        config["data"]["test_fraction"] = 0.1
        host.send(p.Start(config=config))
        started = host.wait_for(lambda e: isinstance(e, p.RunStarted), timeout=60)
        assert started.epochs == 0 and started.total_steps == 0
        seen: list = []
        # Past 3 epochs of steps (what a default run of this size would stop at), still going, ETA unknown.
        host.wait_for(lambda e: isinstance(e, p.StepStats) and e.epoch > 3, timeout=60, seen=seen)
        stats = of(seen, p.StepStats)
        assert all(s.eta_s is None and s.progress == 0.0 for s in stats)
        host.send(p.Stop())
        after: list = []
        done = host.wait_for(lambda e: isinstance(e, p.RunFinished), timeout=60, seen=after)
        assert done.state == p.STOPPED and done.summary["epochs"] >= 3
        # Stopped is over too: the test split is evaluated (issue 14: `line`, with no val split, showed no
        # metrics at all after x in the app, where toy presets train until stopped).
        tests = [e for e in of(after, p.EvalResult) if e.split == "test"]
        assert tests and done.summary["test"] == tests[-1].metrics and "accuracy" in done.summary["test"]
    finally:
        host.close()


def test_epochs_0_refuses_schedules_shaped_by_the_run_and_sweeps():
    with pytest.raises(ConfigError) as err:
        from_dict({"train": {"epochs": 0, "scheduler": "cosine"}})
    assert "train.scheduler" in str(err.value) and "until stopped" in str(err.value)
    from_dict({"train": {"epochs": 0, "scheduler": "step", "warmup_steps": 10}})  # a schedule with no end is fine
    with pytest.raises(ConfigError) as err:
        from_dict({"train": {"epochs": -1}})
    assert "train.epochs" in str(err.value)
    from torchtui.engine.sweep import parse

    with pytest.raises(ConfigError) as err:
        parse({"params": {"train.lr": [0.01, 0.1]}}, tiny(epochs=0))
    assert "train.epochs" in str(err.value)


def test_start_then_pause_then_step_takes_exactly_one_step(tmp_path):
    """What n does with no run: the Pause sent right after Start lands before the first step."""
    host = InProcessHost(str(tmp_path / "runs"))
    try:
        host.send(p.Start(config=tiny(epochs=0)))
        host.send(p.Pause())
        host.send(p.Step())
        seen: list = []
        host.wait_for(lambda e: isinstance(e, p.StepStats), timeout=60, seen=seen)
        host.send(p.Stop())
        host.wait_for(lambda e: isinstance(e, p.RunFinished), timeout=60, seen=seen)
        steps = [s for e in of(seen, p.StepStats) for s in e.step]
        assert steps == [1], steps
        assert p.PAUSED in [e.state for e in of(seen, p.StateChanged)]
    finally:
        host.close()
