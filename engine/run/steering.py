"""Live changes of an active run (lr, weight decay, grad clip): checked whole, then applied between two steps.

A run has two lrs, as nanoGPT (`lr = get_lr(it)`) and Lightning's LearningRateMonitor tell them apart:
- the **base** lr, `run.base_lr`: the setup's `train.lr`, what a schedule is shaped from;
- the **current** lr, `run.lr`: what the next optimizer step uses (the schedule at this step).

Every live lr change multiplies both by one factor, so a schedule keeps its shape at the new level:
`SetHparams.lr` sets the base (factor new ÷ old base), `current_lr` sets the lr of the next step (factor
new ÷ current), `lr_scale` multiplies (the app's ×2 and ÷2). A change is validated in full before anything is
applied: a refused one leaves the run exactly as it was and says why, naming the field.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from torchtui.engine import protocol as p
from torchtui.engine.run.callbacks.events import append_rows
from torchtui.engine.runs import hparams_row
from torchtui.engine.schema import FLOAT32_MAX, ConfigError


@dataclass(frozen=True)
class Plan:
    """What a SetHparams will do: the lr factor (1.0: the lr stays) and the new weight decay and clip."""
    factor: float
    base_lr: float
    current_lr: float
    weight_decay: float
    grad_clip: float


def weight_decay(run) -> float:
    return float(run.optimizer.param_groups[0].get("weight_decay", 0.0))


def plan(run, command: p.SetHparams) -> Plan:
    """The change `command` asks for, checked whole; raises ValueError naming the field and the fix."""
    if command.lr is not None and command.current_lr is not None:
        raise ValueError("train.lr: give the base lr or the current lr, not both")
    factor = 1.0
    if command.lr is not None:
        factor = _positive("train.lr", command.lr) / run.base_lr
    if command.current_lr is not None:
        wanted = _positive("lr", command.current_lr)
        if run.lr <= 0:
            raise ValueError("lr: the current lr is 0 (where the schedule ends), so it cannot be scaled to a value; "
                             "set train.lr, the base lr, instead")
        factor = wanted / run.lr
    if command.lr_scale is not None:
        factor *= _positive("lr ×", command.lr_scale)
    base, current = run.base_lr * factor, run.lr * factor
    if not (math.isfinite(factor) and 0 < base <= FLOAT32_MAX and math.isfinite(current)):
        raise ValueError(f"train.lr: {base:g} is out of range (a positive number at most 3.4e38)")
    decay = weight_decay(run) if command.weight_decay is None else _number("train.weight_decay", command.weight_decay)
    clip = run.grad_clip if command.grad_clip is None else _number("train.grad_clip", command.grad_clip)
    _check_setup(run, base, decay, clip)
    return Plan(factor, base, current, decay, clip)


def _number(field: str, value) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"{field}: must be a finite number, got {value!r}")
    return float(value)


def _positive(field: str, value) -> float:
    number = _number(field, value)
    if number <= 0:
        raise ValueError(f"{field}: must be greater than 0, got {value!r}")
    return number


def _check_setup(run, base: float, decay: float, clip: float) -> None:
    """The setup with these values must be one the run could have started with (the same rules as a preset)."""
    from torchtui.engine.config import from_dict

    plain = dict(run.config_dict)
    plain["train"] = {**plain.get("train", {}), "lr": base, "weight_decay": decay, "grad_clip": clip}
    try:
        from_dict(plain)
    except ConfigError as err:
        mine = [line for line in err.problems if line.split(":", 1)[0] in ("train.lr", "train.weight_decay",
                                                                        "train.grad_clip")]
        raise ValueError((mine or err.problems)[0]) from None


def apply_live_change(run, command: p.SetHparams, resumed: bool = False) -> bool:
    """Apply `command` between steps: HparamsChanged to clients and an hparams row in metrics.jsonl; a refused
    change is an Error and changes nothing. `resumed`: config.yaml's edit applied as a run resumes."""
    from torchtui.engine.run.optim import scale_lr

    emit = run.session.emit
    try:
        change = plan(run, command)
    except ValueError as err:
        where = "resume: config.yaml's edit refused" if resumed else "live change refused"
        emit(p.Error(run.run_id, f"{where}: {err}"))
        return False
    changes = {}
    if change.factor != 1.0:
        old_current, old_base = run.lr, run.base_lr
        scale_lr(run.optimizer, run.scheduler, run.plateau, change.factor)
        run.base_lr = change.base_lr
        changes["lr"] = [old_current, run.lr]
        changes["base_lr"] = [old_base, run.base_lr]
    if change.weight_decay != weight_decay(run):
        changes["weight_decay"] = [weight_decay(run), change.weight_decay]
        for group in run.optimizer.param_groups:
            group["weight_decay"] = change.weight_decay
    if change.grad_clip != run.grad_clip:
        changes["grad_clip"] = [run.grad_clip, change.grad_clip]
        run.grad_clip = change.grad_clip
    if not changes:
        return False
    emit(p.HparamsChanged(run.run_id, run.step, changes))
    append_rows(run, emit, [hparams_row(run.step, {k: v[1] for k, v in changes.items()})])
    return True
