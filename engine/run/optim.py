"""Losses, optimizers and lr schedules by name (the registries the config's choices come from), and their factories.

The tables import no torch, so config validation and the Hparams pane read them without loading it; the
factories import torch when a run is prepared. A new optimizer is one entry in OPTIMIZERS: the torch.optim
class, the shared TrainConfig fields it takes, and its own settings (keys of train.optimizer_args).
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from torchtui.engine.schema import ConfigError, excerpt, suggest

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


@dataclass(frozen=True)
class Arg:
    """One optimizer's own setting, a key of train.optimizer_args: its kind, default, valid range and help."""
    name: str
    kind: str                      # float, int, bool, choice (text from `choices`) or pair (two numbers)
    default: Any
    help: str
    low: float | None = None       # the valid range; `open` names the ends it excludes: low, high or both
    high: float | None = None
    open: str = ""
    choices: tuple = ()
    rule: Callable | None = None   # pair → a problem (what it must be) or None

    @property
    def range_text(self) -> str:
        ends = [f"{'above' if self.open in ('low', 'both') else 'at least'} {self.low:g}" if self.low is not None
                else "", f"{'below' if self.open in ('high', 'both') else 'at most'} {self.high:g}"
                if self.high is not None else ""]
        return " and ".join(e for e in ends if e)

    @property
    def doc(self) -> str:
        """The help with the valid values, as the Hparams pane shows it."""
        valid = ", ".join(self.choices) if self.kind == "choice" else self.range_text
        return f"{self.help} ({valid}; default {self.default})" if valid else f"{self.help} (default {self.default})"

    def parse(self, value: Any) -> tuple[Any, str | None]:
        """(the value as torch takes it, None), or (None, what it must be, with the value given)."""
        got = f", got {excerpt(value)}"
        if self.kind == "bool":
            return (value, None) if isinstance(value, bool) else (None, "must be true or false" + got)
        if self.kind == "choice":
            unknown = f"unknown {excerpt(value)} ({suggest(value, self.choices)})"
            return (value, None) if value in self.choices else (None, unknown)
        if self.kind == "pair":
            pair = [_number(v) for v in value] if isinstance(value, (list, tuple)) and len(value) == 2 else []
            problem = self.rule(pair) if len(pair) == 2 and None not in pair else "must be two numbers"
            return (tuple(pair), None) if problem is None else (None, problem + got)
        number = _number(value)
        if self.kind == "int" and number is not None and not (number.is_integer() and abs(number) < 2**53):
            number = None
        kind = "whole number" if self.kind == "int" else "number"
        if number is None or not self._in_range(number):
            return None, f"must be a {kind} {self.range_text}".rstrip() + got
        return (int(number) if self.kind == "int" else number), None

    def _in_range(self, v: float) -> bool:
        low_ok = self.low is None or v > self.low or (v == self.low and self.open not in ("low", "both"))
        high_ok = self.high is None or v < self.high or (v == self.high and self.open not in ("high", "both"))
        return low_ok and high_ok


def _number(value: Any) -> float | None:
    """A finite number from YAML (where 1e-3 without a dot reads as text), else None."""
    if isinstance(value, str):
        try:
            value = float(value.strip())
        except ValueError:
            return None
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) < 2**1000:  # float() overflows past
        return float(value)
    if isinstance(value, float) and math.isfinite(value):
        return value
    return None


@dataclass(frozen=True)
class Optimizer:
    """A torch.optim class, the shared TrainConfig fields it takes besides lr, and its own settings."""
    cls: str
    takes: tuple[str, ...]
    args: tuple[Arg, ...] = ()
    help: str = ""
    closure: bool = False          # its step re-evaluates the loss through a closure (lbfgs)
    sparse: bool = False           # it needs sparse gradients (nn.Embedding(sparse=True))
    matrices: bool = False         # it updates 2-D weight matrices only

    def arg(self, name: str) -> Arg | None:
        return next((a for a in self.args if a.name == name), None)


def _etas(pair: list[float]) -> str | None:
    return None if 0 < pair[0] < 1 < pair[1] else "must be [decrease, increase] with 0 < decrease < 1 < increase"


def _step_sizes(pair: list[float]) -> str | None:
    return None if 0 < pair[0] <= pair[1] else "must be [smallest, largest] with 0 < smallest <= largest"


_AMSGRAD = Arg("amsgrad", "bool", False, "use the largest second-moment estimate seen so far (AMSGrad)")
_DECOUPLED = Arg("decoupled_weight_decay", "bool", False, "decay the weights directly (as adamw) instead of "
                 "adding weight_decay to the gradient")
# name -> the optimizer; the Hparams pane, validation and the factory all read this table.
OPTIMIZERS = {
    "sgd": Optimizer("SGD", ("momentum", "nesterov", "weight_decay"), (
        Arg("dampening", "float", 0.0, "share of each new gradient held back from the momentum", 0.0, 1.0),)),
    "adam": Optimizer("Adam", ("betas", "eps", "weight_decay"), (_AMSGRAD,)),
    "adamw": Optimizer("AdamW", ("betas", "eps", "weight_decay"), (_AMSGRAD,)),
    "rmsprop": Optimizer("RMSprop", ("momentum", "eps", "weight_decay"), (
        Arg("alpha", "float", 0.99, "smoothing constant of the squared-gradient average", 0.0, 1.0),
        Arg("centered", "bool", False, "divide by the gradient's estimated variance, not its second moment"))),
    "adagrad": Optimizer("Adagrad", ("eps", "weight_decay"), (
        Arg("lr_decay", "float", 0.0, "per-step lr decay: lr / (1 + steps · lr_decay)", 0.0),
        Arg("initial_accumulator_value", "float", 0.0, "starting sum of squared gradients", 0.0))),
    "adadelta": Optimizer("Adadelta", ("weight_decay",), (
        Arg("rho", "float", 0.9, "decay rate of the running averages of squared gradients and updates", 0.0, 1.0),
        Arg("eps", "float", 1e-6, "term added inside the square roots (sets the first steps' size)", 0.0, open="low")),
        help="Adadelta: lr scales the computed update; 1.0 is usual (pytorch/examples' MNIST uses it)"),
    "adamax": Optimizer("Adamax", ("betas", "eps", "weight_decay")),
    "nadam": Optimizer("NAdam", ("betas", "eps", "weight_decay"), (
        Arg("momentum_decay", "float", 4e-3, "how fast the momentum schedule warms up", 0.0), _DECOUPLED)),
    "radam": Optimizer("RAdam", ("betas", "eps", "weight_decay"), (_DECOUPLED,)),
    "asgd": Optimizer("ASGD", ("weight_decay",), (
        Arg("lambd", "float", 1e-4, "decay term of the step size", 0.0),
        Arg("alpha", "float", 0.75, "power of the step-size decay", 0.0),
        Arg("t0", "float", 1e6, "optimizer step from which the weights are averaged", 0.0))),
    "lbfgs": Optimizer("LBFGS", (), (
        Arg("max_iter", "int", 20, "iterations per optimizer step, each re-evaluating the batch's loss", 1, 10_000),
        Arg("history_size", "int", 100, "past updates kept to estimate the curvature", 1, 10_000),
        Arg("line_search_fn", "choice", "none", "how far each iteration moves: a step of lr, or a line search",
            choices=("none", "strong_wolfe")),
        Arg("tolerance_grad", "float", 1e-7, "end a step's iterations once the gradient is this small", 0.0),
        Arg("tolerance_change", "float", 1e-9, "... or once the loss or weights change less than this", 0.0)),
        help="L-BFGS: several loss evaluations per step on the same batch; lr 1 is usual, and a large "
             "batch_size (0 = the whole train split) suits it", closure=True),
    "rprop": Optimizer("Rprop", (), (
        Arg("etas", "pair", [0.5, 1.2], "factors that shrink or grow each weight's step size", rule=_etas),
        Arg("step_sizes", "pair", [1e-6, 50.0], "smallest and largest step size", rule=_step_sizes)),
        help="Rprop: made for full batches (batch_size 0)"),
    "sparse_adam": Optimizer("SparseAdam", ("betas", "eps"), sparse=True,
                             help="SparseAdam: for models whose every gradient is sparse, such as a custom model "
                                  "of nn.Embedding(sparse=True) layers; others need adam"),
    "adafactor": Optimizer("Adafactor", ("weight_decay",), (
        Arg("beta2_decay", "float", -0.8, "decay of the second-moment average, step^beta2_decay", high=0.0),
        Arg("d", "float", 1.0, "clipping threshold of the update's root mean square", 0.0, open="low"))),
    "muon": Optimizer("Muon", ("momentum", "nesterov", "weight_decay"), (
        Arg("ns_steps", "int", 5, "Newton–Schulz iterations that orthogonalise each update", 1, 100),),
        help="Muon: updates 2-D weight matrices only, so the model needs Linear(bias=False) layers "
             "(a custom model); momentum 0.95 is usual", matrices=True),
}
# The TrainConfig fields an optimizer may take, so optimizer_args can point to them instead.
SHARED = ("lr", *dict.fromkeys(name for spec in OPTIMIZERS.values() for name in spec.takes))


def takes(field: str) -> tuple[str, ...]:
    """The optimizers that take the shared TrainConfig field `field`."""
    return tuple(name for name, spec in OPTIMIZERS.items() if field in spec.takes)


def args_problems(optimizer: str, args: dict) -> Iterator[tuple[str, str]]:
    """(optimizer_args.key, problem) for each key the optimizer does not take or whose value is invalid."""
    spec = OPTIMIZERS.get(optimizer)
    if spec is None:
        return  # the unknown optimizer itself is reported
    own = [a.name for a in spec.args]
    for key, value in args.items():
        arg = spec.arg(key)
        if arg is None:
            yield f"optimizer_args.{key}", _unknown_arg(optimizer, spec, key, own)
            continue
        _, problem = arg.parse(value)
        if problem:
            yield f"optimizer_args.{key}", problem


def _unknown_arg(optimizer: str, spec: Optimizer, key: str, own: list[str]) -> str:
    if key in SHARED:
        fix = f"set train.{key}" if key in spec.takes or key == "lr" else f"{optimizer} does not take it"
        return f"'{key}' is a train field, not an optimizer argument ({fix})"
    if not own:
        return (f"{optimizer} takes no optimizer_args (remove {excerpt(key)}; its settings are the train fields "
                f"{', '.join(('lr', *spec.takes))})")
    close = difflib.get_close_matches(key, own, n=1, cutoff=0.6) if len(key) <= 100 else []
    hint = f"did you mean '{close[0]}'? " if close else ""
    return f"{optimizer} takes no {excerpt(key)} ({hint}it takes: {', '.join(own)})"


def train_problems(cfg) -> Iterator[tuple[str, str]]:
    """(TrainConfig field, problem) for betas, milestones, and settings the chosen optimizer cannot use."""
    if len(cfg.betas) != 2 or any(not 0 <= b < 1 for b in cfg.betas):
        yield "betas", f"must be two numbers in [0, 1), got {cfg.betas!r}"
    if sorted(cfg.milestones) != cfg.milestones or any(m <= 0 for m in cfg.milestones):
        yield "milestones", f"must be positive epochs in increasing order, got {cfg.milestones!r}"
    if not cfg.epochs and cfg.scheduler in SPANS_THE_RUN:
        yield "scheduler", (f"{cfg.scheduler} spans the run's length, but train.epochs 0 trains until stopped: set "
                            "train.epochs, or use a schedule that needs no end (none, step, multistep, exponential, "
                            "plateau)")
    spec = OPTIMIZERS.get(cfg.optimizer)
    if spec is None:
        return
    if cfg.nesterov and ("nesterov" not in spec.takes or cfg.momentum <= 0):
        yield "nesterov", (f"needs optimizer {' or '.join(map(repr, takes('nesterov')))} with momentum > 0 "
                           "(set train.momentum, e.g. 0.9)")
    for field in ("weight_decay", "grad_clip"):
        problem = live_problem(cfg.optimizer, field, getattr(cfg, field))
        if problem:
            yield field, problem
    if spec.closure and cfg.accumulate > 1:
        yield "accumulate", (f"{cfg.optimizer} re-evaluates the loss on one batch inside its step, so it cannot add "
                             "up gradients over several: set accumulate to 1 (a larger batch_size does the same)")
    yield from args_problems(cfg.optimizer, cfg.optimizer_args)


def live_problem(optimizer: str, field: str, value: float) -> str | None:
    """Why the optimizer cannot take this weight_decay or grad_clip (at the start or live), or None."""
    spec = OPTIMIZERS.get(optimizer)
    if spec is None or not value:
        return None
    if field == "weight_decay" and field not in spec.takes:
        return f"{optimizer} has no weight decay (set 0, or use an optimizer that has it, e.g. adamw)"
    if field == "grad_clip" and spec.sparse:
        return f"{optimizer}'s sparse gradients cannot be clipped (set 0)"
    if field == "grad_clip" and spec.closure:
        return (f"{optimizer} builds its steps from the history of true gradients, and clipped ones mislead it "
                "(set 0; line_search_fn strong_wolfe keeps its steps in check)")
    return None


def parallel_problems(optimizer: str, device) -> Iterator[tuple[str, str]]:
    """An optimizer that cannot train data parallel (a closure's re-evaluations, sparse gradients)."""
    spec = OPTIMIZERS.get(optimizer)
    if device.distributed and spec is not None and (spec.closure or spec.sparse):
        yield "train.optimizer", (f"{optimizer} does not train data parallel (device.devices {device.devices}); use "
                                  "adam, or one device")


def precision_problems(optimizer: str, precision: str) -> Iterator[tuple[str, str]]:
    """("device.precision", problem) when the optimizer cannot train at that precision."""
    spec = OPTIMIZERS.get(optimizer)
    if spec is not None and spec.closure and precision == "fp16":
        yield "device.precision", (f"fp16's gradient scaler cannot drive {optimizer}, whose step re-evaluates the "
                                   "loss (use bf16 or fp32, or another optimizer)")


def loss_problem(task: str, loss: str) -> str | None:
    """Why `loss` does not fit `task` (with the fix), or None when it does."""
    if loss not in LOSSES:
        return None
    if task == "tokens" and loss != "cross_entropy":
        return f"'{loss}' is not a next-token loss; this data predicts token ids (use cross_entropy or auto)"
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
    return {"binary": "bce_with_logits", "multiclass": "cross_entropy", "tokens": "cross_entropy"}.get(task, "mse")


def make_loss(name: str, cfg, task: str, ignore_index: int | None = None) -> LossFn:
    """Loss over model outputs (logits or values) and targets (class indices or float values).

    Next-token data (task "tokens"): logits (N, T, V) against ids (N, T), the mean over every position's
    cross-entropy (nanoGPT's), positions whose target is `ignore_index` (padding) left out."""
    import torch.nn.functional as F

    if name not in LOSSES:
        raise ValueError(f"train.loss: unknown '{name}'")
    if name == "bce_with_logits" and task != "binary":
        raise ValueError("train.loss: bce_with_logits needs a two-class task")
    if task == "tokens":
        ignore = -100 if ignore_index is None else ignore_index  # -100: torch's "none"
        smoothing = cfg.label_smoothing
        return lambda out, y: F.cross_entropy(out.reshape(-1, out.shape[-1]), y.reshape(-1), ignore_index=ignore,
                                              label_smoothing=smoothing)
    return LOSSES[name].make(F, cfg)


def make_predict(task: str, n_outputs: int) -> Callable | None:
    """Outputs → predicted class indices (None for regression)."""
    if task == "regression":
        return None
    if task == "tokens":
        return lambda out: out.argmax(dim=-1)
    if n_outputs == 1:
        return lambda out: (out.squeeze(1) > 0).long()
    return lambda out: out.argmax(dim=1)


def make_optimizer(params, cfg):
    """The optimizer named in the config, with the shared settings and the optimizer_args it takes."""
    import torch

    spec = OPTIMIZERS.get(cfg.optimizer)
    if spec is None:
        raise ValueError(f"train.optimizer: unknown '{cfg.optimizer}'")
    others = [tuple(p.shape) for p in params if p.dim() != 2] if spec.matrices else []
    if others:
        raise ConfigError([(f"train.optimizer: {cfg.optimizer} updates 2-D weight matrices only, but this model has "
                            f"{len(others)} other parameters (biases, norms or kernels, e.g. shape {others[0]}); use "
                            "adamw, or a custom model of Linear(bias=False) layers")])
    kwargs = {name: tuple(v) if isinstance(v := getattr(cfg, name), list) else v for name in spec.takes}
    for arg in spec.args:
        value, problem = arg.parse(cfg.optimizer_args.get(arg.name, arg.default))
        if problem:
            raise ConfigError([f"train.optimizer_args.{arg.name}: {problem}"])
        kwargs[arg.name] = None if arg.kind == "choice" and value == "none" else value
    return getattr(torch.optim, spec.cls)(params, lr=cfg.lr, **kwargs)


def require_sparse_gradients(model, params) -> None:
    """sparse_adam steps sparse gradients only: a dense one is refused, naming the parameter and the fix."""
    dense = {id(p) for p in params if p.grad is not None and not p.grad.is_sparse}
    if dense:
        names = [name for name, p in model.named_parameters() if id(p) in dense]
        raise ConfigError([(f"train.optimizer: sparse_adam takes sparse gradients only, but {len(dense)} parameters "
                            f"get dense ones (e.g. '{names[0] if names else '?'}'); use adam, or a model whose every "
                            "layer is nn.Embedding(sparse=True) or nn.EmbeddingBag(sparse=True)")])


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


SPANS_THE_RUN = ("cosine", "onecycle")  # schedules shaped by the run's total steps


def make_scheduler(opt, cfg, steps_per_epoch: int):
    """(per-step scheduler or None, ReduceLROnPlateau or None), warm-up composed in front where asked."""
    from torch.optim import lr_scheduler as S

    if cfg.scheduler not in SCHEDULERS:
        raise ValueError(f"train.scheduler: unknown '{cfg.scheduler}'")
    total = max(1, cfg.epochs * steps_per_epoch)  # epochs 0 (until stopped) only with SCHEDULERS that need no end
    warm = (min(cfg.warmup_steps, total - 1) if cfg.epochs else cfg.warmup_steps) if cfg.warmup_steps else 0
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
