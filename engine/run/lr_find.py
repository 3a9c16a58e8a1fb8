"""The LR range test (Leslie Smith's, as fastai and Lightning run it) on a copy of a model and its optimizer.

The lr grows exponentially from `start` to `end` over `steps` optimizer steps on consecutive training
batches; the loss is smoothed (an EMA with bias correction) and the sweep stops once it exceeds 4× the best
so far or is not finite. Suggestions: the steepest descent of the smoothed loss against log lr, and the lr
of its minimum ÷ 10. The model, optimizer state, RNG and counters it starts from are left untouched.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import torch

from torchtui.engine.data.batches import epoch_permutation
from torchtui.engine.run import checkpoint as ckpt
from torchtui.engine.run import devices, optim
from torchtui.engine.run.devices import autocast_context

START, END, STEPS = 1e-7, 10.0, 100
DIVERGE = 4.0     # stop once the smoothed loss is this many times the best so far
BETA = 0.98       # the loss EMA's decay (fastai's)
SYNC_EVERY = 10   # losses stay on the device and are pulled this many steps at a time
MAX_STEPS = 10_000


@dataclass
class LrCurve:
    """The sweep: lr and smoothed loss per step (up to where it stopped), and the suggested lrs."""
    lrs: list[float] = field(default_factory=list)
    losses: list[float] = field(default_factory=list)
    steepest: float | None = None   # lr of the steepest descent of the smoothed loss
    minimum: float | None = None    # lr of the lowest smoothed loss, ÷ 10
    stopped: str = ""               # why it ended before its last step: "" (it did not), or what happened
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)  # device fallbacks and the like, for the user

    @property
    def suggested(self) -> float | None:
        return self.steepest if self.steepest is not None else self.minimum

    @property
    def points(self) -> list[list[float]]:
        return [[lr, loss] for lr, loss in zip(self.lrs, self.losses)]


def check_range(start: float, end: float, steps: int, names=("start", "end", "steps")) -> str | None:
    """What is wrong with a sweep's range (naming the option and the fix), or None."""
    if not (isinstance(start, (int, float)) and math.isfinite(start) and start > 0):
        return f"{names[0]}: must be a positive number, got {start!r}"
    if not (isinstance(end, (int, float)) and math.isfinite(end) and end > start):
        return f"{names[1]}: must be a number above {names[0]} ({start:g}), got {end!r}"
    if not (isinstance(steps, int) and 5 <= steps <= MAX_STEPS):
        return f"{names[2]}: must be a whole number from 5 to {MAX_STEPS:,}, got {steps!r}"
    return None


def lr_schedule(start: float, end: float, steps: int) -> list[float]:
    """`steps` lrs from start to end, evenly spaced on a log scale."""
    ratio = end / start
    return [start * ratio ** (i / (steps - 1)) for i in range(steps)]


def range_test(model: torch.nn.Module, make_optimizer: Callable, loss_fn: Callable, batches: Iterator, *,
               optimizer_state: dict | None = None, device=None, amp_dtype=None, fp16_scaler: bool = False,
               grad_clip: float = 0.0, clip_mode: str = "norm", accumulate: int = 1,
               start: float = START, end: float = END, steps: int = STEPS) -> LrCurve:
    """Sweep the lr on deep copies of `model` and of the optimizer (`make_optimizer(params)`, loaded with
    `optimizer_state`); `batches` yields (x, y) on the model's device without end. Raises ValueError for a
    bad range; whatever the model or data raise passes through."""
    problem = check_range(start, end, steps)
    if problem:
        raise ValueError(problem)
    began = time.perf_counter()
    work = copy.deepcopy(model)
    work.train()
    work.zero_grad(set_to_none=True)
    params = optim.trainable_parameters(work)
    if not params:
        raise ValueError("model: has no trainable parameters (unfreeze some layers to find an lr)")
    opt = make_optimizer(params)
    if optimizer_state is not None:
        # load_state_dict keeps the given tensors when dtype and device match: without this copy the sweep's
        # steps would update the run's own Adam moments in place.
        opt.load_state_dict(copy.deepcopy(optimizer_state))
    base = float(opt.param_groups[0]["lr"]) or 1.0
    ratios = [float(g["lr"]) / base for g in opt.param_groups]  # groups keep their lr ratios
    device = torch.device(device) if device is not None else params[0].device
    scaler = torch.amp.GradScaler(device.type) if fp16_scaler else None
    curve = LrCurve()
    pending: list[torch.Tensor] = []
    smooth = Smoother()
    lrs = lr_schedule(start, end, steps)
    for i, lr in enumerate(lrs):
        for group, ratio in zip(opt.param_groups, ratios):
            group["lr"] = lr * ratio
        pending.append(_step(work, opt, loss_fn, batches, device, amp_dtype, scaler, params, grad_clip, clip_mode,
                             accumulate))
        if len(pending) < SYNC_EVERY and i < steps - 1:
            continue
        # note: this is a CPU-GPU sync point, one per SYNC_EVERY steps.
        values = torch.stack(pending).tolist()
        first, pending = i + 1 - len(values), []
        for k, value in enumerate(values):
            curve.stopped = smooth.add(value)
            if curve.stopped:
                break
            curve.lrs.append(lrs[first + k])
            curve.losses.append(smooth.value)
        if curve.stopped:
            curve.stopped += f" at lr {lrs[first + k]:.3g}"
            break
    curve.steepest, curve.minimum = suggest(curve.lrs, curve.losses)
    rise = flat_until(curve.lrs, curve.losses)
    if rise is not None:  # a trained model: the "descent" would be batch noise
        curve.steepest, curve.minimum = None, rise / 10
        curve.notes.append(f"the loss is flat up to lr {rise:.2g}, where it starts to rise (the model has learned "
                           "what smaller lrs teach it): the suggestion is a tenth of that")
    curve.seconds = time.perf_counter() - began
    return curve


class Smoother:
    """The loss EMA with bias correction; `add` returns why the sweep should stop ("" to go on)."""

    def __init__(self, beta: float = BETA, diverge: float = DIVERGE):
        self.beta, self.diverge = beta, diverge
        self.avg, self.n, self.best, self.value = 0.0, 0, math.inf, math.nan

    def add(self, loss: float) -> str:
        if not math.isfinite(loss):
            return "the loss was not finite"
        self.avg = self.beta * self.avg + (1 - self.beta) * loss
        self.n += 1
        value = self.avg / (1 - self.beta ** self.n)
        if self.n > 1 and value > self.diverge * self.best:
            return f"the loss exploded (over {self.diverge:g}× its best)"
        self.value, self.best = value, min(self.best, value)
        return ""


def _step(model, opt, loss_fn, batches, device, amp_dtype, scaler, params, grad_clip, clip_mode,
          accumulate) -> torch.Tensor:
    """One optimizer step over `accumulate` batches, as the loop takes it; the summed loss, on the device."""
    total = None
    for _ in range(accumulate):
        xb, yb = next(batches)
        with autocast_context(device, amp_dtype):
            loss = loss_fn(model(xb), yb)
        scaled = loss / accumulate if accumulate > 1 else loss
        (scaler.scale(scaled) if scaler is not None else scaled).backward()
        total = scaled.detach().float() if total is None else total + scaled.detach().float()
    if scaler is not None:
        scaler.unscale_(opt)
    if grad_clip > 0:
        if clip_mode == "value":
            torch.nn.utils.clip_grad_value_(params, grad_clip)
        else:
            torch.nn.utils.clip_grad_norm_(params, grad_clip, foreach=True)
    if scaler is not None:
        scaler.step(opt)
        scaler.update()
    else:
        opt.step()
    opt.zero_grad(set_to_none=True)
    return total


def suggest(lrs: list[float], losses: list[float]) -> tuple[float | None, float | None]:
    """(steepest, minimum ÷ 10) of a smoothed curve, None where there is none.

    The first tenth of the points (at most 10, as Lightning skips) is left out of both: the EMA has seen
    few batches there. Steepest: the lr where the loss falls fastest against log lr, the slope taken over a
    window of ±1/25 of the points (batch noise between neighbours would otherwise win), searched on the way
    down to the minimum. Minimum: the lr of the lowest loss ÷ 10 (fastai's "minimum").
    """
    n = len(losses)
    if not n:
        return None, None
    skip = min(max(1, min(10, n // 10)), n - 1)
    low = min(range(skip, n), key=losses.__getitem__)
    minimum = lrs[low] / 10
    w = max(1, n // 25)
    logs = [math.log10(lr) for lr in lrs]
    best, steepest = 0.0, None
    for i in range(skip, low + 1):
        a, b = max(skip, i - w), min(n - 1, i + w)
        if b == a:
            continue
        slope = (losses[b] - losses[a]) / (logs[b] - logs[a])
        if slope < best:
            best, steepest = slope, lrs[i]
    return steepest, minimum


FLAT = 0.05  # a curve whose best is within 5 % of where it started has no descent to speak of


def flat_until(lrs: list[float], losses: list[float]) -> float | None:
    """The lr where a flat curve starts to rise (20 % over its lowest), or None when it falls or never rises."""
    n = len(losses)
    skip = min(max(1, min(10, n // 10)), n - 1) if n else 0
    if n - skip < 5:
        return None
    begin = sorted(losses[skip:skip + 5])[2]
    low = min(losses[skip:])
    if begin - low > FLAT * abs(begin):
        return None
    return next((lr for lr, loss in zip(lrs[skip:], losses[skip:]) if loss > 1.2 * low), None)


def consecutive_batches(data, batch_size: int, seed: int, epoch: int = 0, start_batch: int = 0,
                        device=None) -> Iterator:
    """The training batches in the order a run takes them from (epoch, start_batch), going on into the
    next epochs' orders for as long as they are asked for (a small split is cycled)."""
    if not len(data.train):
        raise ValueError("data: the train split is empty; give it some samples to find an lr")
    while True:
        perm = epoch_permutation(len(data.train), seed, epoch, device)
        yield from data.train_batches(perm, batch_size, start_batch=start_batch)
        epoch, start_batch = epoch + 1, 0


@contextmanager
def rng_kept():
    """The global RNG (CPU and CUDA) as it was before: dropout and augmentation in the sweep draw from it."""
    state = ckpt.rng_state()
    try:
        yield
    finally:
        ckpt.set_rng_state(state)


def refuse_optimizer(name: str) -> None:
    """lbfgs searches its own step length and sparse_adam needs sparse gradients: no range test for them."""
    spec = optim.OPTIMIZERS.get(name)
    if spec is not None and (spec.closure or spec.sparse):
        why = "searches its own step length each step" if spec.closure else "steps sparse gradients only"
        raise ValueError(f"train.optimizer: the LR range test takes one plain step per batch, and {name} {why}; "
                         "find the lr with adam or sgd, or tune it by a sweep")


def for_run(run, start: float = START, end: float = END, steps: int = STEPS) -> LrCurve:
    """The range test from a run's current weights and optimizer state, on the batches it would take next."""
    cfg = run.config.train
    refuse_optimizer(cfg.optimizer)
    model = run.plain_model  # eager: compiling a copy would take longer than the sweep
    with rng_kept():
        batches = consecutive_batches(run.data, cfg.batch_size, cfg.seed, run.epoch, run.batch_in_epoch, run.device)
        return range_test(model, lambda params: optim.make_optimizer(params, cfg), run.loss_fn, batches,
                          optimizer_state=run.optimizer.state_dict(), device=run.device, amp_dtype=run.amp_dtype,
                          fp16_scaler=run.scaler is not None, grad_clip=run.grad_clip, clip_mode=cfg.clip_mode,
                          accumulate=cfg.accumulate, start=start, end=end, steps=steps)


def for_config(config, start: float = START, end: float = END, steps: int = STEPS, load=None) -> LrCurve:
    """The range test on a fresh model of `config`, prepared as a run of it would be (same seed, device,
    precision and first batches), without a run folder. Raises ConfigError for what the user can fix."""
    from torchtui.engine.run.prepare import build_data_and_model

    device, notes = devices.resolve_device(config.device.device)
    notes += devices.apply_backend_flags(config.device, device)
    amp_dtype, needs_scaler, more = devices.precision_settings(config.device, device)
    cfg = config.train
    refuse_optimizer(cfg.optimizer)
    with rng_kept():
        torch.manual_seed(cfg.seed)  # the initial weights a run of this config starts from
        splits, model, loss_name, _, data_notes = build_data_and_model(config, load)
        model, splits = model.to(device), splits.to(device)
        loss_fn = optim.make_loss(loss_name, cfg, splits.task)
        batches = consecutive_batches(splits, cfg.batch_size, cfg.seed, device=device)
        curve = range_test(model, lambda params: optim.make_optimizer(params, cfg), loss_fn, batches,
                           device=device, amp_dtype=amp_dtype, fp16_scaler=needs_scaler, grad_clip=cfg.grad_clip,
                           clip_mode=cfg.clip_mode, accumulate=cfg.accumulate, start=start, end=end, steps=steps)
    curve.notes = notes + more + data_notes + curve.notes
    return curve


def answer(cmd, run=None, load=None):
    """The LrFound reply to a FindLr: from the active run's current state, or (no run) from `cmd.config`.
    Never raises: whatever goes wrong is the reply's error, and the run goes on untouched."""
    import traceback

    from torchtui.engine import protocol as p
    from torchtui.engine.config import from_dict
    from torchtui.engine.schema import ConfigError

    run_id, step = (run.run_id, run.step) if run is not None else (None, 0)
    try:
        if run is not None:
            curve = for_run(run, cmd.start, cmd.end, cmd.steps)
        elif not cmd.config:  # asked of a run that has ended since: the setup is not known here
            return p.LrFound(cmd.request_id, error="no run is active: ask again to test the setup in the panes")
        else:
            curve = for_config(from_dict(cmd.config), cmd.start, cmd.end, cmd.steps, load)
    except (ConfigError, ValueError) as err:
        return p.LrFound(cmd.request_id, run_id=run_id, step=step, error=str(err),
                         traceback=getattr(err, "details", ""))
    except Exception as err:  # noqa: BLE001 - user models and data may raise anything; the run must not end
        oom = isinstance(err, torch.cuda.OutOfMemoryError)
        message = (OOM_MESSAGE if oom else f"the LR range test failed: {type(err).__name__}: {err}")
        details = traceback.format_exc()
    else:
        return p.LrFound(cmd.request_id, points=curve.points, suggested_lr=curve.suggested,
                         steepest_lr=curve.steepest, minimum_lr=curve.minimum, stopped=curve.stopped, run_id=run_id,
                         step=step, seconds=round(curve.seconds, 3), notes=list(curve.notes))
    if oom:  # out of the except block, the traceback no longer holds the copies: give their memory back
        torch.cuda.empty_cache()
    return p.LrFound(cmd.request_id, run_id=run_id, step=step, error=message, traceback=details)


OOM_MESSAGE = ("CUDA ran out of memory in the LR range test (it holds a second copy of the model and optimizer): "
               "lower train.batch_size, or find the lr before the run starts")
