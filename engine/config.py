"""The experiment configuration: one dataclass per pane, composed into `ExperimentConfig`, with validation."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, ClassVar, Iterator

import yaml

from .schema import ConfigError, parse_dataclass, suggest, to_plain

SCHEMA_VERSION = 1

SOURCES = ("line", "moons", "circles", "xor", "spiral", "blobs", "sine", "csv")
# Task of each synthetic source; a CSV's task is detected from its target column when loaded.
SOURCE_TASKS = {
    "line": "regression", "sine": "regression",
    "moons": "binary", "circles": "binary", "xor": "binary",
    "spiral": "multiclass", "blobs": "multiclass",
}
ACTIVATIONS = ("relu", "leaky_relu", "gelu", "silu", "tanh", "sigmoid", "none")
NORMS = ("none", "batch", "layer")
INITS = ("default", "xavier_uniform", "xavier_normal", "kaiming_uniform", "kaiming_normal", "uniform", "normal")
LOSSES = ("auto", "mse", "l1", "smooth_l1", "huber", "cross_entropy", "bce_with_logits", "nll", "kl_div")
REGRESSION_LOSSES = ("mse", "l1", "smooth_l1", "huber")
CLASSIFICATION_LOSSES = ("cross_entropy", "bce_with_logits", "nll", "kl_div")
OPTIMIZERS = ("sgd", "adam", "adamw", "rmsprop", "adagrad")
SCHEDULERS = ("none", "step", "multistep", "exponential", "cosine", "onecycle", "plateau")
CLIP_MODES = ("norm", "value")
MODES = ("auto", "min", "max")
PRECISIONS = ("fp32", "bf16", "fp16")
# Metrics a run reports; early stopping and "best" checkpoints pick one of these.
METRICS = ("loss", "accuracy", "f1", "precision", "recall", "mae", "mse", "r2")
MAXIMISED = ("accuracy", "f1", "precision", "recall", "r2")


def _fraction(name: str, value, upper: float = 1.0) -> Iterator[tuple[str, str]]:
    if value is not None and not 0 <= value < upper:
        yield name, f"must be at least 0 and below {upper:g}, got {value!r}"


@dataclass
class DataConfig:
    CHOICES: ClassVar = {"source": SOURCES}
    POSITIVE: ClassVar = ("n_samples", "features", "seq_len", "step")
    NON_NEGATIVE: ClassVar = ("noise",)

    source: str = "moons"
    """Where samples come from: line, moons, circles, xor, spiral, blobs, sine (synthetic) or csv."""
    n_samples: int = 1000
    """How many samples a synthetic generator makes (line uses start/end/step instead)."""
    noise: float = 0.1
    """Standard deviation of Gaussian noise added by the generator."""
    seed: int = 0
    """Seed for generating, shuffling and splitting the data."""
    classes: int = 3
    """Number of spiral arms or blob centres."""
    features: int = 2
    """Number of input features for blobs."""
    factor: float = 0.5
    """circles: radius of the inner circle relative to the outer one (0–1)."""
    weight: float = 0.7
    """line: the true slope, y = weight·X + bias."""
    bias: float = 0.3
    """line: the true intercept."""
    start: float = 0.0
    """line: first X value."""
    end: float = 1.0
    """line: X values stop before this."""
    step: float = 0.02
    """line: spacing between X values."""
    seq_len: int = 20
    """sine: length of each input window; the target is the next value."""
    path: str = ""
    """csv: path to the file (first row is the header)."""
    target: str = ""
    """csv: name of the target column (default: the last column)."""
    columns: list[str] = field(default_factory=list)
    """csv: feature columns (default: every column but the target)."""
    val_fraction: float = 0.2
    """Share of samples held out for validation after each epoch."""
    test_fraction: float = 0.0
    """Share of samples held out for the final test evaluation."""
    shuffle: bool = True
    """Shuffle samples before splitting (off keeps order: the first samples train, the last test)."""
    standardize: bool = False
    """Scale features to zero mean and unit variance, fitted on the train split only."""

    def check(self) -> Iterator[tuple[str, str]]:
        if self.classes < 2:
            yield "classes", f"must be at least 2, got {self.classes!r}"
        if not 0 < self.factor < 1:
            yield "factor", f"must be between 0 and 1, got {self.factor!r}"
        if self.end <= self.start:
            yield "end", f"must be greater than start ({self.start!r}), got {self.end!r}"
        yield from _fraction("val_fraction", self.val_fraction)
        yield from _fraction("test_fraction", self.test_fraction)
        if self.val_fraction + self.test_fraction >= 1:
            yield "val_fraction", "val_fraction + test_fraction must leave samples to train on (sum below 1)"
        if self.source == "csv" and not self.path:
            yield "path", "a csv source needs a file path (set data.path)"


@dataclass
class LayerConfig:
    CHOICES: ClassVar = {"activation": ACTIVATIONS, "norm": NORMS}
    POSITIVE: ClassVar = ("units",)
    NON_NEGATIVE: ClassVar = ("negative_slope",)

    units: int = 64
    """Width of this hidden layer."""
    activation: str = "relu"
    """relu, leaky_relu, gelu, silu, tanh, sigmoid or none."""
    negative_slope: float = 0.01
    """leaky_relu: slope for negative inputs."""
    dropout: float = 0.0
    """Probability of zeroing each unit during training (0 = off)."""
    norm: str = "none"
    """Normalisation after the linear layer: none, batch or layer."""

    @classmethod
    def from_shorthand(cls, data: Any) -> Any:
        """A bare number is a layer of that many units with the default activation."""
        return {"units": data} if isinstance(data, (int, float)) and not isinstance(data, bool) else data

    def check(self) -> Iterator[tuple[str, str]]:
        yield from _fraction("dropout", self.dropout)


@dataclass
class ModelConfig:
    CHOICES: ClassVar = {"kind": ("mlp",), "init": INITS}
    POSITIVE: ClassVar = ("init_std",)

    kind: str = "mlp"
    """Architecture family; mlp builds Linear layers from `layers`."""
    layers: list[LayerConfig] = field(default_factory=lambda: [LayerConfig(), LayerConfig()])
    """Hidden layers in order; a number is shorthand for {units: N}. Empty = a linear model."""
    init: str = "default"
    """Weight init: default, xavier_uniform, xavier_normal, kaiming_uniform, kaiming_normal, uniform, normal."""
    init_a: float = -0.1
    """uniform init: lower bound."""
    init_b: float = 0.1
    """uniform init: upper bound."""
    init_std: float = 0.02
    """normal init: standard deviation."""
    seed: int = 0
    """Seed for weight initialisation."""

    def check(self) -> Iterator[tuple[str, str]]:
        if self.init == "uniform" and self.init_b <= self.init_a:
            yield "init_b", f"must be greater than init_a ({self.init_a!r}), got {self.init_b!r}"


@dataclass
class TrainConfig:
    CHOICES: ClassVar = {"loss": LOSSES, "optimizer": OPTIMIZERS, "scheduler": SCHEDULERS, "clip_mode": CLIP_MODES,
                         "early_stop_mode": MODES, "best_metric": METRICS, "early_stop_metric": ("", *METRICS)}
    POSITIVE: ClassVar = ("lr", "eps", "huber_delta", "gamma", "epochs", "step_size", "accumulate",
                          "stats_every", "plateau_patience", "early_stop_patience")
    NON_NEGATIVE: ClassVar = ("weight_decay", "momentum", "batch_size", "warmup_steps", "grad_clip",
                              "eval_every", "min_lr", "early_stop_min_delta")

    loss: str = "auto"
    """mse, l1, smooth_l1, huber, cross_entropy, bce_with_logits, nll, kl_div, or auto (by task)."""
    label_smoothing: float = 0.0
    """cross_entropy: share of probability spread over the other classes."""
    huber_delta: float = 1.0
    """huber: where the loss turns from quadratic to linear."""
    optimizer: str = "adam"
    """sgd, adam, adamw, rmsprop or adagrad."""
    lr: float = 0.001
    """Learning rate (the peak rate for onecycle)."""
    weight_decay: float = 0.0
    """L2 penalty (decoupled for adamw)."""
    momentum: float = 0.0
    """sgd and rmsprop: momentum factor."""
    nesterov: bool = False
    """sgd: Nesterov momentum (needs momentum > 0)."""
    betas: list[float] = field(default_factory=lambda: [0.9, 0.999])
    """adam, adamw: decay rates of the gradient moment estimates."""
    eps: float = 1e-8
    """adam, adamw, rmsprop, adagrad: term added to the denominator for stability."""
    batch_size: int = 64
    """Samples per step; 0 = the whole train split in one batch."""
    epochs: int = 20
    """Passes over the train split."""
    scheduler: str = "none"
    """none, step, multistep, exponential, cosine, onecycle or plateau."""
    step_size: int = 10
    """step: epochs between lr decays."""
    milestones: list[int] = field(default_factory=lambda: [10, 15])
    """multistep: epochs at which the lr decays."""
    gamma: float = 0.1
    """step, multistep, exponential (per epoch): lr multiplier."""
    min_lr: float = 0.0
    """cosine: the lr reached at the end; plateau: the floor."""
    plateau_patience: int = 5
    """plateau: evaluations without improvement before the lr is cut by `gamma`."""
    warmup_steps: int = 0
    """Linear warm-up from near 0 to lr over this many steps (0 = off)."""
    grad_clip: float = 0.0
    """Clip gradients to this norm or value (0 = off)."""
    clip_mode: str = "norm"
    """norm (rescale the global norm) or value (clamp each element)."""
    accumulate: int = 1
    """Batches whose gradients add up before one optimizer step."""
    eval_every: int = 0
    """Also evaluate every N steps (0 = once per epoch only)."""
    early_stop_metric: str = ""
    """Stop when this val metric stops improving (loss, accuracy, f1, mae, …; empty = off)."""
    early_stop_mode: str = "auto"
    """min, max, or auto (max for accuracy-like metrics, min otherwise)."""
    early_stop_patience: int = 5
    """Evaluations without improvement before stopping."""
    early_stop_min_delta: float = 0.0
    """Smallest change that counts as an improvement."""
    best_metric: str = "loss"
    """Val metric that decides best.pt."""
    stats_every: int = 10
    """Steps between the costlier statistics (update/weight ratio, weight norms)."""
    seed: int = 0
    """Seed for shuffling batches, dropout and anything else random in training."""
    deterministic: bool = False
    """Use deterministic algorithms only (slower; errors where none exists)."""

    def check(self) -> Iterator[tuple[str, str]]:
        yield from _fraction("label_smoothing", self.label_smoothing)
        if len(self.betas) != 2 or any(not 0 <= b < 1 for b in self.betas):
            yield "betas", f"must be two numbers in [0, 1), got {self.betas!r}"
        if sorted(self.milestones) != self.milestones or any(m <= 0 for m in self.milestones):
            yield "milestones", f"must be positive epochs in increasing order, got {self.milestones!r}"
        if self.nesterov and (self.optimizer != "sgd" or self.momentum <= 0):
            yield "nesterov", "needs optimizer 'sgd' with momentum > 0 (set train.momentum, e.g. 0.9)"


@dataclass
class DeviceConfig:
    CHOICES: ClassVar = {"precision": PRECISIONS}
    NON_NEGATIVE: ClassVar = ("threads",)

    device: str = "auto"
    """auto (cuda, else mps, else cpu), cpu, cuda, cuda:N or mps."""
    precision: str = "fp32"
    """fp32, or mixed precision: bf16, or fp16 (with a gradient scaler)."""
    tf32: bool = False
    """Allow TensorFloat-32 matmuls on Ampere or newer GPUs."""
    compile: bool = False
    """Wrap the model in torch.compile."""
    threads: int = 0
    """CPU threads for torch (0 = torch's default)."""

    def check(self) -> Iterator[tuple[str, str]]:
        dev = self.device
        ok = dev in ("auto", "cpu", "cuda", "mps") or (
            dev.startswith("cuda:") and dev[5:].isdigit()
        )
        if not ok:
            yield "device", f"unknown '{dev}' ({suggest(dev, ('auto', 'cpu', 'cuda', 'cuda:0', 'mps'))})"


@dataclass
class ExperimentConfig:
    schema: int = SCHEMA_VERSION
    """Version of this file's format."""
    name: str = "experiment"
    """Short name; run folders end with it."""
    description: str = ""
    """One line saying what this experiment shows."""
    data: DataConfig = field(default_factory=DataConfig)
    """Dataset pane."""
    model: ModelConfig = field(default_factory=ModelConfig)
    """Model pane."""
    train: TrainConfig = field(default_factory=TrainConfig)
    """Hyperparameters pane."""
    device: DeviceConfig = field(default_factory=DeviceConfig)
    """Device pane."""

    def check(self) -> Iterator[tuple[str, str]]:
        if self.schema != SCHEMA_VERSION:
            yield "schema", f"version {self.schema!r} is not supported (this torchtui reads {SCHEMA_VERSION})"
        task = SOURCE_TASKS.get(self.data.source)
        if task is not None:
            problem = loss_problem(task, self.train.loss)
            if problem:
                yield "train.loss", problem

    @property
    def task(self) -> str | None:
        """regression, binary or multiclass where the source fixes it; None for csv (known once loaded)."""
        return SOURCE_TASKS.get(self.data.source)

    def to_dict(self) -> dict:
        return to_plain(self)

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False, allow_unicode=True)


def loss_problem(task: str, loss: str) -> str | None:
    """Why `loss` does not fit `task` (with the fix), or None when it does."""
    if loss == "auto" or loss not in LOSSES:
        return None
    if task == "regression" and loss in CLASSIFICATION_LOSSES:
        return (f"'{loss}' needs class labels, but this data has continuous regression targets "
                f"(use one of: {', '.join(REGRESSION_LOSSES)}, or auto)")
    if task != "regression" and loss in REGRESSION_LOSSES:
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


def from_dict(data: Any) -> ExperimentConfig:
    """Validate a plain mapping into an ExperimentConfig; raises ConfigError listing every problem."""
    problems: list[str] = []
    if data is None:
        data = {}
    config = parse_dataclass(ExperimentConfig, data, "", problems)
    if problems:
        raise ConfigError(problems)
    return config


def validate(config: ExperimentConfig) -> list[str]:
    """Every problem with an already-built config (e.g. one a form edited), as `path: message` lines."""
    try:
        from_dict(config.to_dict())
    except ConfigError as err:
        return err.problems
    return []


def parse_override(text: str) -> tuple[list[str], Any]:
    """Split `train.lr=0.01` into a key path and a value parsed as YAML (`[64, 64]` is a list)."""
    key, sep, raw = text.partition("=")
    key = key.strip()
    if not sep or not key or any(not part for part in key.split(".")):
        raise ConfigError([f"--set {text!r}: expected KEY=VALUE with a dotted key, e.g. train.lr=0.01"])
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError as err:
        reason = str(err).splitlines()[0]
        raise ConfigError([f"--set {key}: value {raw!r} is not valid YAML ({reason})"]) from None
    return key.split("."), value


def apply_overrides(data: dict, overrides: list[str]) -> dict:
    """Return a copy of a preset mapping with each `KEY=VALUE` override applied (validated later)."""
    out = _deepcopy_plain(data or {})
    for text in overrides:
        parts, value = parse_override(text)
        node = out
        for i, part in enumerate(parts[:-1]):
            child = node.get(part)
            if child is None:
                child = node[part] = {}
            if not isinstance(child, dict):
                where = ".".join(parts[: i + 1])
                raise ConfigError([f"--set {'.'.join(parts)}: '{where}' is a value, not a section"])
            node = child
        node[parts[-1]] = value
    return out


def _deepcopy_plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _deepcopy_plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_deepcopy_plain(v) for v in value]
    return value


def replace(config: ExperimentConfig, **sections: Any) -> ExperimentConfig:
    """A copy of `config` with whole sections swapped, e.g. replace(cfg, train=new_train)."""
    return dataclasses.replace(config, **sections)
