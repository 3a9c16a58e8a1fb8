"""The engine through its protocol, driven from another thread, against both hosts."""

import math
import time
from pathlib import Path

import pytest
import torch

from torchtui.engine import protocol as p
from torchtui.engine.host import InProcessHost, WorkerHost
from torchtui.engine.run.checkpoint import load_checkpoint
from torchtui.engine.runs import RunFolder

from .helpers import of, run_to_end, tiny


@pytest.fixture(params=["in-process", "worker"])
def host(request, tmp_path):
    cls = InProcessHost if request.param == "in-process" else WorkerHost
    h = cls(str(tmp_path / "runs"))
    h.wait_for(lambda e: isinstance(e, p.EngineReady), timeout=60)
    yield h
    h.close()


@pytest.fixture
def local(tmp_path):
    h = InProcessHost(str(tmp_path / "runs"))
    yield h
    h.close()


def test_a_run_reports_everything_and_writes_its_folder(local):
    events, done = run_to_end(local, tiny(epochs=2))
    assert done.state == p.FINISHED
    started = of(events, p.RunStarted)[0]
    assert started.params == sum([2 * 16 + 16, 16 * 16 + 16, 16 * 1 + 1])  # binary task: one logit
    assert started.splits == {"train": 205, "val": 51, "test": 0}
    assert [e.state for e in of(events, p.StateChanged)] == [p.RUNNING, p.FINISHED]
    stats = of(events, p.StepStats)
    steps = [s for e in stats for s in e.step]
    assert steps == list(range(1, started.total_steps + 1))  # every step reported exactly once, in order
    assert all(p.is_plain(vars(e)) for e in events)  # never a tensor
    evals = of(events, p.EvalResult)
    assert [e.epoch for e in evals] == [1, 2] and \
        {"accuracy", "f1", "precision", "recall", "loss"} <= set(evals[0].metrics)
    assert len(evals[0].confusion) == 2 and sum(map(sum, evals[0].confusion)) == 51
    assert set(evals[0].dead_relu) == {"act1", "act2"}
    folder = RunFolder(Path(started.run_dir))
    rows, _ = folder.read_metrics()
    assert [r["step"] for r in rows if r["type"] == "step"] == steps
    assert folder.checkpoint_path("last").exists() and folder.checkpoint_path("best").exists()
    assert (folder.path / "summary.json").exists() and folder.read_config()["name"] == "tiny-moons"
    assert done.summary["val"]["accuracy"] > 0.5 and done.summary["steps"] == started.total_steps
    sampled = [e for e in stats if e.layer_steps]
    assert sampled and len(sampled[0].update_ratio[0]) == len(started.layers) == 3


def test_pause_step_live_lr_eval_checkpoint_stop(host):
    seen = []
    host.send(p.Start(config=tiny(epochs=500)))
    host.wait_for(lambda e: isinstance(e, p.StepStats), seen=seen)
    host.send(p.Pause())
    host.wait_for(lambda e: isinstance(e, p.StateChanged) and e.state == p.PAUSED, seen=seen)
    host.drain()
    last_step = max(s for e in of(seen, p.StepStats) for s in e.step)

    host.send(p.SetHparams(lr=0.123))
    change = host.wait_for(lambda e: isinstance(e, p.HparamsChanged), seen=seen)
    assert change.changes["lr"][1] == pytest.approx(0.123)
    host.send(p.SetHparams(lr_scale=2.0))  # two quick ×2 presses while paused compound: ×4
    host.send(p.SetHparams(lr_scale=2.0))
    for expected in (0.246, 0.492):
        change = host.wait_for(lambda e: isinstance(e, p.HparamsChanged), seen=seen)
        assert change.changes["lr"][1] == pytest.approx(expected)
    host.send(p.SetHparams(lr_scale=0.25))
    assert host.wait_for(lambda e: isinstance(e, p.HparamsChanged), seen=seen).changes["lr"][1] == pytest.approx(0.123)
    time.sleep(0.5)  # the user looks at the charts while paused (the scenario, not a wait for an outcome)
    host.send(p.Step())
    stats = host.wait_for(lambda e: isinstance(e, p.StepStats), seen=seen)
    assert stats.step == [last_step + 1]  # exactly one step, then paused again
    assert stats.lr == [pytest.approx(0.123)]
    assert stats.samples_per_s > 500  # the step's own time, not the time spent paused before it

    host.send(p.EvaluateNow())
    ev = host.wait_for(lambda e: isinstance(e, p.EvalResult), seen=seen)
    assert ev.step == last_step + 1 and 0 <= ev.metrics["accuracy"] <= 1
    host.send(p.CheckpointNow())
    saved = host.wait_for(lambda e: isinstance(e, p.CheckpointSaved), seen=seen)
    assert saved.kind == "manual" and load_checkpoint(saved.path)["step"] == last_step + 1

    host.send(p.Resume())
    host.wait_for(lambda e: isinstance(e, p.StateChanged) and e.state == p.RUNNING, seen=seen)
    host.wait_for(lambda e: isinstance(e, p.StepStats) and e.step[-1] > last_step + 3, seen=seen)
    host.send(p.Stop())
    done = host.wait_for(lambda e: isinstance(e, p.RunFinished), seen=seen)
    assert done.state == p.STOPPED
    ckpt = load_checkpoint(Path(done.summary["run_dir"]) / "checkpoints" / "last.pt")
    assert ckpt["step"] == done.summary["steps"]
    # the engine takes the next start
    _, again = run_to_end(host, tiny(epochs=1))
    assert again.state == p.FINISHED


def test_requests_need_no_run(host):
    host.send(p.DescribeModel(config={"data": {"source": "blobs", "features": 8, "classes": 2},
                                      "model": {"layers": [{"units": 4, "activation": "none"}]},
                                      "train": {"loss": "cross_entropy"}}, request_id=7))
    reply = host.wait_for(lambda e: isinstance(e, p.ModelDescribed))
    assert reply.request_id == 7 and reply.summary["total"] == 46 and "46" in reply.text
    host.send(p.ListDevices(request_id=8))
    devices = host.wait_for(lambda e: isinstance(e, p.DevicesListed))
    assert devices.devices[0]["kind"] == "cpu"
    host.send(p.PreviewData(config={"data": {"source": "moons", "n_samples": 100}}, max_points=20, request_id=9))
    preview = host.wait_for(lambda e: isinstance(e, p.DataPreviewed))
    assert preview.task == "binary" and len(preview.x) == 20 and len(preview.x[0]) == 2
    host.send(p.DescribeModel(config={"train": {"lr": "x"}}, request_id=10))
    assert "train.lr" in host.wait_for(lambda e: isinstance(e, p.ModelDescribed)).error


def test_bad_config_fails_cleanly_and_names_the_field(local):
    events, done = run_to_end(local, {"train": {"lr": "fast"}})
    assert done is None
    assert "train.lr: must be a positive number" in of(events, p.Error)[0].message
    _, ok = run_to_end(local, tiny(epochs=1))
    assert ok.state == p.FINISHED


def test_huge_lr_diverges_naming_step_and_layer(local):
    events, done = run_to_end(local, tiny(epochs=50, lr=1e6, optimizer="sgd"))
    assert done.state == p.DIVERGED
    reason = done.summary["reason"]
    assert "non-finite" in reason and "at step" in reason
    step = int(reason.split("at step ")[1].split(";")[0].split()[0].replace(",", ""))  # 1,641 as logs write it
    assert "first non-finite gradients in layer '" in reason
    assert reason.split("layer '")[1].rstrip("'") in of(events, p.RunStarted)[0].layers
    reported = [s for e in of(events, p.StepStats) for s in e.step]
    assert reported[-1] == step  # nothing after the bad step is reported
    assert all(math.isfinite(v) for e in of(events, p.StepStats) for v in e.loss[:-1])
    _, ok = run_to_end(local, tiny(epochs=1))
    assert ok.state == p.FINISHED


def model_raising(monkeypatch, error: Exception):
    """Make every model the engine builds raise `error` in forward while training (a stand-in for broken
    user code that passes the engine's shape probe, which runs in eval mode)."""
    from torchtui.engine.models import build as models

    real = models.build_model

    class Raising(torch.nn.Module):
        def __init__(self, inner):
            super().__init__()
            self.inner = inner  # keeps real parameters for the optimizer

        def forward(self, x):
            if self.training:
                raise error
            return self.inner(x)

    monkeypatch.setattr(models, "build_model", lambda *a, **k: Raising(real(*a, **k)))
    return lambda: monkeypatch.setattr(models, "build_model", real)


def test_an_exception_in_forward_fails_with_traceback(local, monkeypatch):
    restore = model_raising(monkeypatch, RuntimeError("boom in forward"))
    events, done = run_to_end(local, tiny())
    assert done.state == p.FAILED
    error = of(events, p.Error)[0]
    assert "boom in forward" in error.message and "Traceback" in error.traceback and "forward" in error.traceback
    restore()
    _, ok = run_to_end(local, tiny(epochs=1))
    assert ok.state == p.FINISHED


def test_cuda_oom_fails_with_batch_size_hint(local, monkeypatch):
    restore = model_raising(monkeypatch, torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 20 GiB"))
    events, done = run_to_end(local, tiny())
    assert done.state == p.FAILED and "batch_size" in done.summary["reason"]
    assert "lower train.batch_size" in of(events, p.Error)[0].message
    restore()
    _, ok = run_to_end(local, tiny(epochs=1))
    assert ok.state == p.FINISHED


def test_resume_continues_exactly(local, tmp_path):
    config = tiny(epochs=4, optimizer="adam", scheduler="cosine", eval_budget=0)  # stopped after epoch 2's
    _, straight = run_to_end(local, config)

    seen = []
    local.send(p.Start(config=config))
    local.wait_for(lambda e: isinstance(e, p.EvalResult) and e.epoch == 2, seen=seen)
    local.send(p.Stop())
    stopped = local.wait_for(lambda e: isinstance(e, p.RunFinished), seen=seen)
    assert stopped.state == p.STOPPED and stopped.summary["epochs"] >= 2
    _, resumed = run_to_end(local, {}, resume=stopped.summary["run_dir"])
    assert resumed.state == p.FINISHED and resumed.summary["steps"] == straight.summary["steps"]
    assert resumed.summary["val"]["loss"] == pytest.approx(straight.summary["val"]["loss"], abs=1e-6)
    rows, _ = RunFolder(Path(stopped.summary["run_dir"])).read_metrics()
    steps = [r["step"] for r in rows if r["type"] == "step"]
    assert steps == list(range(1, straight.summary["steps"] + 1))  # one stream, no repeats, no gaps


def test_early_stopping_ends_finished(local):
    _, done = run_to_end(local, tiny(epochs=200, lr=1e-9, early_stop_metric="accuracy", early_stop_patience=2))
    assert done.state == p.FINISHED and "early stop" in done.summary["reason"]
    assert done.summary["epochs"] < 200


def test_prediction_view_data(local):
    events, _ = run_to_end(local, tiny(epochs=2))
    grid = of(events, p.Predictions)
    assert [e.epoch for e in grid] == [1, 2] and grid[0].kind == "grid"
    assert len(grid[0].grid) == 30 and len(grid[0].grid[0]) == 60 and {v for r in grid[-1].grid for v in r} <= {0, 1}
    assert grid[0].x_min < grid[0].x_max and len(grid[0].train_x[0]) == 2
    line = {"data": {"source": "line", "shuffle": False}, "model": {"layers": []}, "train": {"epochs": 2},
            "device": {"device": "cpu"}}
    events, _ = run_to_end(local, line)
    curve = of(events, p.Predictions)[-1]
    assert curve.kind == "curve" and len(curve.curve_x) == len(curve.curve_y) == 100
    assert curve.train_x == sorted(curve.train_x) and len(curve.val_x) == 10


def test_best_checkpoint_holds_the_best_evaluation_even_when_writes_are_throttled(local):
    # eval_budget 0: an evaluation every epoch, more often than best.pt may be written
    events, done = run_to_end(local, tiny(epochs=6, best_metric="accuracy", eval_budget=0))
    evals = [e for e in of(events, p.EvalResult) if e.split == "val"]
    best = max(evals, key=lambda e: e.metrics["accuracy"])  # first of the best, as "improved" is strict
    saved = load_checkpoint(Path(done.summary["run_dir"]) / "checkpoints" / "best.pt")
    assert saved["best"] == pytest.approx(best.metrics["accuracy"]) and saved["step"] == best.step
    assert len([e for e in of(events, p.CheckpointSaved) if e.kind == "best"]) < len(evals)  # throttled


def test_a_command_with_no_run_says_what_it_could_not_do_in_words(local):
    """Not the protocol's class name ('EvaluateNow: no run is active'): the log is read by people."""
    local.wait_for(lambda e: isinstance(e, p.EngineReady), timeout=60)
    for command, words in ((p.EvaluateNow(), "cannot evaluate"), (p.Stop(), "cannot stop"),
                           (p.SetHparams(lr=0.1), "cannot change the hyperparameters")):
        local.send(command)
        said = local.wait_for(lambda e: isinstance(e, p.Log) and e.level == "warning", timeout=30)
        assert said.message == f"{words}: no run is active (start one first)"


@pytest.mark.parametrize("epochs", [2, 0])
def test_a_run_freezes_the_objects_alive_at_its_start_and_leaves_nothing_frozen(local, epochs):
    """gc.freeze while training (the collector's scans of torch's objects cost 8 % of a small model's steps);
    after the run, finished or stopped, nothing stays frozen (the run's garbage is collected again)."""
    import gc

    gc.unfreeze()  # an app tested earlier in this process may have frozen its widgets
    local.send(p.Start(config=tiny(epochs=epochs)))
    local.wait_for(lambda e: isinstance(e, p.StepStats), timeout=60)
    assert gc.get_freeze_count() > 10_000  # torch's modules and the run, frozen while it trains
    if not epochs:
        local.send(p.Stop())
    local.wait_for(lambda e: isinstance(e, p.RunFinished), timeout=60)
    assert gc.get_freeze_count() == 0


WARM_UP_CHECK = """
import sys, time
from torchtui.engine import protocol as p
from torchtui.engine.host import InProcessHost
host = InProcessHost()
host.wait_for(lambda e: isinstance(e, p.EngineReady), timeout=120)
deadline = time.monotonic() + 60
while "torch._dynamo" not in sys.modules and time.monotonic() < deadline:
    time.sleep(0.05)  # polling a condition with a deadline: the warm-up imports in the engine's thread
print("warm" if "torch._dynamo" in sys.modules else "cold")
"""


def test_an_idle_engine_warms_up_what_the_first_optimizer_imports():
    """Issue 26 item 4: space on a fresh app took seconds before the first step, the first optimizer's
    __init__ importing torch._dynamo (7.9 s on the loaded 2-core machine). An engine that has said
    EngineReady and has nothing to do does that import then, before anyone asks for a run."""
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-c", WARM_UP_CHECK], capture_output=True, text=True, timeout=300)
    assert done.stdout.strip() == "warm", done.stderr[-2000:]
