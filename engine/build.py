"""Builds the pieces a run trains with from its config: loss, optimizer, lr scheduler, accuracy counter."""

from __future__ import annotations

import math
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from .config import TrainConfig

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def make_loss(name: str, cfg: TrainConfig, task: str) -> LossFn:
    """Loss over model outputs (logits or values) and targets (class indices or float values).

    The model always returns raw logits; losses that want probabilities or log-probabilities
    (nll, kl_div, bce_with_logits) get them here, so prediction and metrics see the same outputs.
    """
    if name == "mse":
        return F.mse_loss
    if name == "l1":
        return F.l1_loss
    if name == "smooth_l1":
        return F.smooth_l1_loss
    if name == "huber":
        return lambda out, y: F.huber_loss(out, y, delta=cfg.huber_delta)
    if name == "cross_entropy":
        return lambda out, y: F.cross_entropy(out, y, label_smoothing=cfg.label_smoothing)
    if name == "nll":
        return lambda out, y: F.nll_loss(F.log_softmax(out, dim=1), y)
    if name == "kl_div":
        return lambda out, y: F.kl_div(
            F.log_softmax(out, dim=1), F.one_hot(y, out.shape[1]).to(out.dtype), reduction="batchmean"
        )
    if name == "bce_with_logits":
        if task != "binary":
            raise ValueError("train.loss: bce_with_logits needs a two-class task")
        return lambda out, y: F.binary_cross_entropy_with_logits(out.squeeze(1), y.to(out.dtype))
    raise ValueError(f"train.loss: unknown '{name}'")


def make_predict(task: str, n_outputs: int) -> Callable[[torch.Tensor], torch.Tensor] | None:
    """Outputs → predicted class indices (None for regression)."""
    if task == "regression":
        return None
    if n_outputs == 1:
        return lambda out: (out.squeeze(1) > 0).long()
    return lambda out: out.argmax(dim=1)


def make_optimizer(params, cfg: TrainConfig) -> torch.optim.Optimizer:
    """The optimizer named in the config, with its settings."""
    name, lr, wd = cfg.optimizer, cfg.lr, cfg.weight_decay
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=cfg.momentum, nesterov=cfg.nesterov, weight_decay=wd)
    if name == "adam":
        return torch.optim.Adam(params, lr=lr, betas=tuple(cfg.betas), eps=cfg.eps, weight_decay=wd)
    if name == "adamw":
        return torch.optim.AdamW(params, lr=lr, betas=tuple(cfg.betas), eps=cfg.eps, weight_decay=wd)
    if name == "rmsprop":
        return torch.optim.RMSprop(params, lr=lr, momentum=cfg.momentum, eps=cfg.eps, weight_decay=wd)
    if name == "adagrad":
        return torch.optim.Adagrad(params, lr=lr, eps=cfg.eps, weight_decay=wd)
    raise ValueError(f"train.optimizer: unknown '{name}'")


def make_scheduler(opt, cfg: TrainConfig, steps_per_epoch: int):
    """(per-step scheduler or None, ReduceLROnPlateau or None).

    Every schedule is stepped once per optimizer step, so warm-up composes with it; epoch-based
    settings (step_size, milestones, per-epoch gamma) are converted to steps here.
    """
    total = max(1, cfg.epochs * steps_per_epoch)
    warm = min(cfg.warmup_steps, total - 1) if cfg.warmup_steps else 0
    main, plateau = None, None
    name = cfg.scheduler
    if name == "step":
        main = torch.optim.lr_scheduler.StepLR(opt, cfg.step_size * steps_per_epoch, gamma=cfg.gamma)
    elif name == "multistep":
        marks = [m * steps_per_epoch - warm for m in cfg.milestones]
        main = torch.optim.lr_scheduler.MultiStepLR(opt, [max(1, m) for m in marks], gamma=cfg.gamma)
    elif name == "exponential":
        main = torch.optim.lr_scheduler.ExponentialLR(opt, gamma=cfg.gamma ** (1.0 / steps_per_epoch))
    elif name == "cosine":
        main = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(1, total - warm), eta_min=cfg.min_lr)
    elif name == "onecycle":
        # OneCycle has its own warm-up phase: warmup_steps sets its length when given.
        pct = warm / total if warm else 0.3
        return torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, total_steps=total, pct_start=pct), None
    elif name == "plateau":
        plateau = torch.optim.lr_scheduler.ReduceLROnPlateau(
            opt, factor=cfg.gamma, patience=cfg.plateau_patience, min_lr=cfg.min_lr
        )
    if warm:
        warmup = torch.optim.lr_scheduler.LinearLR(opt, start_factor=1.0 / (warm + 1), total_iters=warm)
        if main is None:
            return warmup, plateau
        return torch.optim.lr_scheduler.SequentialLR(opt, [warmup, main], milestones=[warm]), plateau
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


def trainable_parameters(model: nn.Module) -> list[nn.Parameter]:
    return [p for p in model.parameters() if p.requires_grad]
