"""Losses, optimizers and lr schedules by name (the registries the config's choices come from), and their factories.

The tables import no torch, so config validation and the Hparams pane read them without loading it; the
factories import torch when a run is prepared. A new optimizer is one line in OPTIMIZERS (plus a
TrainConfig field if it takes a setting no other optimizer has).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

LossFn = Callable  # (outputs, targets) -> scalar loss tensor; `cfg` below is the TrainConfig


@dataclass(frozen=True)
class Loss:
    targets: str           # "values" (regression) or "classes"
    make: Callable         # (torch.nn.functional, TrainConfig) -> LossFn over raw model outputs


# The model always returns raw logits; losses that want probabilities or log-probabilities (nll, kl_div,
# bce_with_logits) get them here, so prediction and metrics see the same outputs.
LOSSES = {
    "mse": Loss("values", lambda F, cfg: F.mse_loss),
    "l1": Loss("values", lambda F, cfg: F.l1_loss),
    "smooth_l1": Loss("values", lambda F, cfg: F.smooth_l1_loss),
    "huber": Loss("values", lambda F, cfg: lambda out, y: F.huber_loss(out, y, delta=cfg.huber_delta)),
    "cross_entropy": Loss("classes", lambda F, cfg: lambda out, y: F.cross_entropy(
        out, y, label_smoothing=cfg.label_smoothing)),
    "bce_with_logits": Loss("classes", lambda F, cfg: lambda out, y: F.binary_cross_entropy_with_logits(
        out.squeeze(1), y.to(out.dtype))),
    "nll": Loss("classes", lambda F, cfg: lambda out, y: F.nll_loss(F.log_softmax(out, dim=1), y)),
    "kl_div": Loss("classes", lambda F, cfg: lambda out, y: F.kl_div(
        F.log_softmax(out, dim=1), F.one_hot(y, out.shape[1]).to(out.dtype), reduction="batchmean")),
}

# name -> (class in torch.optim, the TrainConfig fields it takes as keyword arguments besides lr)
OPTIMIZERS = {
    "sgd": ("SGD", ("momentum", "nesterov", "weight_decay")),
    "adam": ("Adam", ("betas", "eps", "weight_decay")),
    "adamw": ("AdamW", ("betas", "eps", "weight_decay")),
    "rmsprop": ("RMSprop", ("momentum", "eps", "weight_decay")),
    "adagrad": ("Adagrad", ("eps", "weight_decay")),
}


def loss_problem(task: str, loss: str) -> str | None:
    """Why `loss` does not fit `task` (with the fix), or None when it does."""
    if loss not in LOSSES:
        return None
    values = [name for name, spec in LOSSES.items() if spec.targets == "values"]
    if task == "regression" and LOSSES[loss].targets == "classes":
        return (f"'{loss}' needs class labels, but this data has continuous regression targets "
                f"(use one of: {', '.join(values)}, or auto)")
    if task != "regression" and LOSSES[loss].targets == "values":
        return (f"'{loss}' treats class labels as numbers on a scale, which they are not "
                f"(use cross_entropy, bce_with_logits for two classes, or auto)")
    if task == "multiclass" and loss == "bce_with_logits":
        return "'bce_with_logits' is for two classes; this data has more (use cross_entropy or auto)"
    return None


def resolve_loss(task: str, loss: str) -> str:
    """The loss a run uses: `auto` becomes bce_with_logits (binary), cross_entropy (multiclass) or mse."""
    if loss != "auto":
        return loss
    return {"binary": "bce_with_logits", "multiclass": "cross_entropy"}.get(task, "mse")


def make_loss(name: str, cfg, task: str) -> LossFn:
    """Loss over model outputs (logits or values) and targets (class indices or float values)."""
    import torch.nn.functional as F

    if name not in LOSSES:
        raise ValueError(f"train.loss: unknown '{name}'")
    if name == "bce_with_logits" and task != "binary":
        raise ValueError("train.loss: bce_with_logits needs a two-class task")
    return LOSSES[name].make(F, cfg)


def make_predict(task: str, n_outputs: int) -> Callable | None:
    """Outputs → predicted class indices (None for regression)."""
    if task == "regression":
        return None
    if n_outputs == 1:
        return lambda out: (out.squeeze(1) > 0).long()
    return lambda out: out.argmax(dim=1)


def make_optimizer(params, cfg):
    """The optimizer named in the config, with the settings it takes."""
    import torch

    if cfg.optimizer not in OPTIMIZERS:
        raise ValueError(f"train.optimizer: unknown '{cfg.optimizer}'")
    class_name, fields = OPTIMIZERS[cfg.optimizer]
    kwargs = {name: tuple(v) if isinstance(v := getattr(cfg, name), list) else v for name in fields}
    return getattr(torch.optim, class_name)(params, lr=cfg.lr, **kwargs)


# Each schedule is stepped once per optimizer step, so epoch-based settings (step_size, milestones, per-epoch
# gamma) are converted to steps. S is torch.optim.lr_scheduler; `warm` warm-up steps come first (onecycle
# has its own warm-up phase, whose length warmup_steps sets when given).
SCHEDULERS = {
    "none": None,
    "step": lambda S, opt, cfg, per_epoch, warm, total: S.StepLR(opt, cfg.step_size * per_epoch, gamma=cfg.gamma),
    "multistep": lambda S, opt, cfg, per_epoch, warm, total: S.MultiStepLR(
        opt, [max(1, m * per_epoch - warm) for m in cfg.milestones], gamma=cfg.gamma),
    "exponential": lambda S, opt, cfg, per_epoch, warm, total: S.ExponentialLR(
        opt, gamma=cfg.gamma ** (1.0 / per_epoch)),
    "cosine": lambda S, opt, cfg, per_epoch, warm, total: S.CosineAnnealingLR(
        opt, T_max=max(1, total - warm), eta_min=cfg.min_lr),
    "onecycle": lambda S, opt, cfg, per_epoch, warm, total: S.OneCycleLR(
        opt, max_lr=cfg.lr, total_steps=total, pct_start=warm / total if warm else 0.3),
    "plateau": lambda S, opt, cfg, per_epoch, warm, total: S.ReduceLROnPlateau(
        opt, factor=cfg.gamma, patience=cfg.plateau_patience, min_lr=cfg.min_lr),
}


def make_scheduler(opt, cfg, steps_per_epoch: int):
    """(per-step scheduler or None, ReduceLROnPlateau or None), warm-up composed in front where asked."""
    from torch.optim import lr_scheduler as S

    if cfg.scheduler not in SCHEDULERS:
        raise ValueError(f"train.scheduler: unknown '{cfg.scheduler}'")
    total = max(1, cfg.epochs * steps_per_epoch)
    warm = min(cfg.warmup_steps, total - 1) if cfg.warmup_steps else 0
    make = SCHEDULERS[cfg.scheduler]
    sched = make(S, opt, cfg, steps_per_epoch, warm, total) if make is not None else None
    if isinstance(sched, S.OneCycleLR):
        return sched, None
    main, plateau = (None, sched) if isinstance(sched, S.ReduceLROnPlateau) else (sched, None)
    if warm:
        warmup = S.LinearLR(opt, start_factor=1.0 / (warm + 1), total_iters=warm)
        if main is None:
            return warmup, plateau
        return S.SequentialLR(opt, [warmup, main], milestones=[warm]), plateau
    return main, plateau


def scale_lr(opt, scheduler, plateau, factor: float) -> None:
    """Multiply the current lr and every lr a scheduler will move towards by `factor`.

    A live change (lr ×2) then persists through the schedule instead of being overwritten at the
    next scheduler step: the schedule keeps its shape at the new level.
    """
    if not math.isfinite(factor) or factor <= 0:
        raise ValueError(f"lr factor must be a positive number, got {factor!r}")
    for group in opt.param_groups:
        for key in ("lr", "initial_lr", "max_lr", "min_lr"):
            if isinstance(group.get(key), (int, float)):
                group[key] *= factor
    schedulers = [scheduler] + list(getattr(scheduler, "_schedulers", [])) if scheduler else []
    for sched in schedulers:
        if hasattr(sched, "base_lrs"):
            sched.base_lrs = [b * factor for b in sched.base_lrs]
        if hasattr(sched, "eta_min"):
            sched.eta_min *= factor
        if hasattr(sched, "_last_lr"):
            sched._last_lr = [g["lr"] for g in opt.param_groups]
    if plateau is not None:
        plateau.min_lrs = [m * factor for m in plateau.min_lrs]


def trainable_parameters(model) -> list:
    return [p for p in model.parameters() if p.requires_grad]
