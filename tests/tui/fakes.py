"""A scripted engine host for UI tests: records commands, replays a fixed stream of events."""

from torchtui.engine import protocol as p
from torchtui.engine.host import EngineHost


class FakeHost(EngineHost):
    """Answers nothing by itself; tests push events with `emit` and read `sent`."""

    def __init__(self, ready: bool = True):
        super().__init__()
        self.sent: list = []
        if ready:
            self.emit(p.EngineReady("2.13.0+cpu", 4242))

    def emit(self, *events) -> None:
        for event in events:
            self.events.put(event)

    def send(self, command) -> None:
        self.sent.append(command)

    def close(self, timeout: float = 10.0) -> None:
        pass


def scripted_run(run_id: str = "20261122-120000-moons", steps: int = 200, epochs: int = 4) -> list:
    """A deterministic run: started, step stats in batches, evaluations, predictions, an lr change."""
    per_epoch = steps // epochs
    events = [
        p.RunStarted(run_id=run_id, run_dir=f"runs/{run_id}", name="moons", task="binary", loss="bce_with_logits",
                     device="cpu", params=4481, trainable=4481, splits={"train": 1400, "val": 400, "test": 200},
                     steps_per_epoch=per_epoch, total_steps=steps, epochs=epochs, start_step=0, start_epoch=0,
                     config={}, class_names=["0", "1"], layers=["fc1", "fc2", "head"]),
        p.StateChanged(run_id, p.RUNNING),
    ]
    for start in range(0, steps, 25):
        idx = list(range(start + 1, start + 26))
        events.append(p.StepStats(
            run_id=run_id, step=idx, epoch=idx[-1] / per_epoch,
            loss=[0.7 * (0.98 ** s) + 0.05 * ((s * 7919) % 13) / 13 for s in idx],
            lr=[0.003 if s < 120 else 0.006 for s in idx], acc_steps=idx, acc=[min(0.99, 0.5 + s / 250) for s in idx],
            layer_steps=[idx[9], idx[19]], grad_norm=[1.0 / (1 + s / 50) for s in (idx[9], idx[19])],
            layer_grad_norm=[[0.5, 0.4, 0.3]] * 2, update_ratio=[[1e-3, 2e-3, 5e-4]] * 2,
            samples_per_s=41000.0, eta_s=(steps - idx[-1]) / 800,
            progress=idx[-1] / steps))
        if idx[-1] % per_epoch == 0:
            epoch = idx[-1] // per_epoch
            events.append(p.EvalResult(run_id, "val", idx[-1], epoch,
                                       {"loss": 0.5 / epoch, "accuracy": 0.8 + epoch * 0.04, "f1": 0.79 + epoch * 0.04,
                                        "precision": 0.8, "recall": 0.8}, [[180, 20], [15, 185]],
                                       {"act1": 0.1, "act2": 0.05}))
            events.append(p.Predictions(run_id, idx[-1], epoch, "grid", -1.5, 2.5, -1.0, 1.5,
                                        grid=[[int(c > 30 - r) for c in range(60)] for r in range(30)],
                                        train_x=[[-1 + i * 0.03, (i % 7) * 0.2 - 0.5] for i in range(100)],
                                        train_y=[i % 2 for i in range(100)]))
        if idx[-1] == 125:
            events.append(p.HparamsChanged(run_id, 120, {"lr": [0.003, 0.006]}))
    return events


class DetachableFakeHost(FakeHost):
    """A fake run server: it can be detached from, as ServerHost can."""

    def __init__(self, ready: bool = True):
        super().__init__(ready)
        self.detached = False

    def detach(self) -> None:
        self.detached = True


def lr_found(request_id: int, run_id: str | None = None, step: int = 0, suggested: float = 0.0148) -> p.LrFound:
    """A scripted LrFound: a falling then exploding loss over 80 lrs from 1e-7, steepest at `suggested`."""
    import math

    lrs = [1e-7 * 10 ** (i * 8 / 99) for i in range(80)]
    centre = math.log10(suggested)
    losses = [0.75 - 0.3 / (1 + math.exp(-3 * (math.log10(lr) - centre))) + max(0.0, math.log10(lr)) for lr in lrs]
    return p.LrFound(request_id, points=[[lr, loss] for lr, loss in zip(lrs, losses)], suggested_lr=suggested,
                     steepest_lr=suggested, minimum_lr=0.089, stopped="the loss exploded (over 4× its best) at lr 1.6",
                     run_id=run_id, step=step, seconds=1.0)
