"""The experiment configuration: one dataclass per pane, composed into `ExperimentConfig`, with validation."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, ClassVar

import yaml

from torchtui.engine.data import sources as data_sources
from torchtui.engine.data import tabular
from torchtui.engine.models.config import (  # noqa: F401 - the Model pane's dataclasses and choices, re-exported
    ACTIVATIONS,
    CELLS,
    INITS,
    MODEL_KINDS,
    NORMS,
    POOLINGS,
    POOLS,
    ConvConfig,
    LayerConfig,
    ModelConfig,
)
from torchtui.engine.models.config import fraction as _fraction
from torchtui.engine.run import optim
from torchtui.engine.run.device_config import DeviceConfig
from torchtui.engine.schema import ConfigError, parse_dataclass, to_plain

SCHEMA_VERSION = 1

# The choices come from the registries where each is implemented (torch-free tables).
SOURCES = tuple(data_sources.SOURCES)
SYNTHETIC_SOURCES = data_sources.in_module("synthetic")
SOURCE_TASKS = {name: s.task for name, s in data_sources.SOURCES.items() if s.task}  # sources that fix a task
TABULAR_SOURCES = tuple(name for name, s in data_sources.SOURCES.items() if s.tabular)
TORCHVISION_DATASETS = ("MNIST", "FashionMNIST", "CIFAR10", "ImageFolder")
LOSSES = ("auto", *optim.LOSSES)
OPTIMIZERS, SCHEDULERS = tuple(optim.OPTIMIZERS), tuple(optim.SCHEDULERS)
CLIP_MODES = ("norm", "value")
MODES = ("auto", "min", "max")
GUARDS = ("auto", "off", "ask", "rollback", "stop")
# Metrics a run reports; early stopping and "best" checkpoints pick one of these.
METRICS = ("loss", "accuracy", "f1", "precision", "recall", "mae", "mse", "r2", "perplexity", "bpc")
MAXIMISED = ("accuracy", "f1", "precision", "recall", "r2")


@dataclass
class DataConfig:
    CHOICES: ClassVar = {"source": SOURCES, "dataset": TORCHVISION_DATASETS, "missing": tabular.MISSING_CHOICES,
                         "categorical": tabular.CATEGORICAL_CHOICES, "standardize_target": tabular.TARGET_SCALING}
    POSITIVE: ClassVar = ("n_samples", "features", "seq_len", "step", "block_size", "vocab_size")
    NON_NEGATIVE: ClassVar = ("noise", "limit", "image_size", "crop", "workers")
    MAXIMUM: ClassVar = {"n_samples": 10_000_000, "features": 100_000, "classes": 100_000, "seq_len": 100_000,
                         "image_size": 4096, "crop": 1024, "workers": 256, "block_size": 1_000_000,
                         "vocab_size": 1_000_000}

    source: str = "moons"
    """Where samples come from: synthetic (line, moons, circles, xor, spiral, blobs, sine), bundled (digits,
    iris, wine, breast_cancer) or read from data.path (csv, idx, tensors, torchvision, code)."""
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
    """csv, tensors: the file; idx, torchvision: the folder; code: path/to/file.py:function.
    Relative paths in a preset file are relative to that file."""
    target: str = ""
    """csv: name of the target column (default: the last column)."""
    columns: list[str] = field(default_factory=list)
    """csv: feature columns (default: every column but the target)."""
    dataset: str = "MNIST"
    """torchvision: MNIST, FashionMNIST, CIFAR10 or ImageFolder, read from data.path with download=False."""
    kwargs: dict[str, Any] = field(default_factory=dict)
    """code: keyword arguments passed to your function."""
    limit: int = 0
    """Use at most this many samples of each part read (0 = all): quick runs on a subset."""
    image_size: int = 0
    """ImageFolder: resize images to this square size (0 = keep; they must then share one size)."""
    flip: bool = False
    """Images: flip training images left-right at random (augmentation)."""
    crop: int = 0
    """Images: random crops of training images padded by this many pixels per side (0 = off)."""
    stream: bool = False
    """code, ImageFolder: read batches through a DataLoader instead of holding the data in memory
    (on anyway when the data would take more than 2 GiB)."""
    workers: int = 0
    """Streamed data: DataLoader worker processes (0 = load in the training thread)."""
    val_fraction: float = 0.2
    """Share of samples held out for validation after each epoch."""
    test_fraction: float = 0.0
    """Share of samples held out for the final test evaluation."""
    shuffle: bool = True
    """Shuffle samples before splitting (off keeps order: the first samples train, the last test)."""
    standardize: bool = False
    """Scale to zero mean and unit variance (per feature, or per channel for images), fitted on train only."""
    standardize_target: str = "auto"
    """Regression: scale targets to zero mean and unit variance, fitted on train (metrics stay in the data's
    units): auto (when their scale is far from 1), always or never."""
    missing: str = "error"
    """csv: cells without a value: error (all listed), drop the rows, or fill with the train split's mean,
    median or most_frequent value."""
    categorical: str = "auto"
    """csv: text feature columns: auto (one-hot, categories from the train split) or error."""
    tokenizer: str = "char"
    """text, and csv text columns: char (the corpus's characters), bytes (UTF-8 bytes), bpe (byte-level BPE
    trained on the train split) or a path to a tokenizer.json. Nothing is downloaded."""
    vocab_size: int = 1024
    """bpe: tokens in the vocabulary it learns (at least 257: the 256 bytes and more)."""
    block_size: int = 128
    """text: tokens per window (targets are the next tokens); csv text columns: the padded length (longer
    texts are cut)."""
    files: str = ""
    """text, when data.path is a folder: only files matching this glob (e.g. **/*.py; default every file
    that is not hidden and holds no NUL byte)."""
    text_columns: list[str] = field(default_factory=list)
    """csv: columns of free text, tokenised into padded id sequences (default: detected, long strings with
    many distinct values)."""

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
        yield from data_sources.size_problems(self)
        if self.tokenizer == "bpe" and self.vocab_size < 257:
            yield "vocab_size", f"bpe needs at least 257 tokens (the 256 bytes and more), got {self.vocab_size}"
        if not self.tokenizer.strip():
            yield "tokenizer", "char, bytes, bpe or a path to a tokenizer.json"
        # An empty path is reported when the data is loaded, so a preset that leaves it to
        # `--set data.path=…` (mnist-mlp) still opens and round-trips.
        if self.source == "code" and self.path.strip() and not data_sources.is_code_ref(self.path):
            yield "path", f"expected path/to/file.py:function, got '{self.path}'"


@dataclass
class TrainConfig:
    CHOICES: ClassVar = {"loss": LOSSES, "optimizer": OPTIMIZERS, "scheduler": SCHEDULERS, "clip_mode": CLIP_MODES,
                         "early_stop_mode": MODES, "best_metric": METRICS, "early_stop_metric": ("", *METRICS),
                         "guard": GUARDS}
    POSITIVE: ClassVar = ("lr", "eps", "huber_delta", "gamma", "step_size", "accumulate",
                          "plateau_patience", "early_stop_patience", "guard_z", "guard_max_rollbacks")
    NON_NEGATIVE: ClassVar = ("weight_decay", "momentum", "batch_size", "warmup_steps", "grad_clip", "eval_every",
                              "min_lr", "early_stop_min_delta", "checkpoint_every", "overfit_batches", "epochs",
                              "stats_every", "eval_budget", "snapshot_every", "snapshot_memory")
    MAXIMUM: ClassVar = {"epochs": 10_000_000, "batch_size": 100_000_000, "accumulate": 1_000_000,
                         "step_size": 10_000_000, "stats_every": 1_000_000_000, "warmup_steps": 1_000_000_000,
                         "eval_every": 1_000_000_000, "plateau_patience": 1_000_000, "early_stop_patience": 1_000_000,
                         "milestones": 1000, "eval_budget": 1.0, "guard_max_rollbacks": 1000}

    # Fields a running run changes from its next step (protocol.SetHparams); the rest apply on restart.
    LIVE: ClassVar = ("lr", "weight_decay", "grad_clip")

    loss: str = "auto"
    """The loss; auto picks one by task (bce_with_logits for two classes, cross_entropy for more, mse for values)."""
    label_smoothing: float = 0.0
    """cross_entropy: share of probability spread over the other classes."""
    huber_delta: float = 1.0
    """huber: where the loss turns from quadratic to linear."""
    optimizer: str = "adam"
    """The optimizer (a torch.optim class)."""
    lr: float = 0.001
    """Learning rate (the peak rate for onecycle)."""
    weight_decay: float = 0.0
    """L2 penalty (decoupled for adamw)."""
    momentum: float = 0.0
    """sgd, rmsprop, muon: momentum factor."""
    nesterov: bool = False
    """sgd, muon: Nesterov momentum (needs momentum > 0)."""
    betas: list[float] = field(default_factory=lambda: [0.9, 0.999])
    """adam, adamw, adamax, nadam, radam, sparse_adam: decay rates of the gradient moment estimates."""
    eps: float = 1e-8
    """adam-style optimizers, rmsprop, adagrad: term added to the denominator for stability."""
    optimizer_args: dict[str, Any] = field(default_factory=dict)
    """The optimizer's own settings, e.g. {rho: 0.95} for adadelta (README lists each optimizer's)."""
    batch_size: int = 64
    """Samples per step; 0 = the whole train split in one batch."""
    epochs: int = 20
    """Passes over the train split (0 = until stopped: x, Ctrl-C or early stopping)."""
    scheduler: str = "none"
    """The lr schedule, stepped every optimizer step (none = a constant lr)."""
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
    overfit_batches: int = 0
    """Train and evaluate on the same first N batches every epoch, unshuffled and unaugmented (0 = off)."""
    eval_every: int = 0
    """Also evaluate every N steps (0 = once per epoch only)."""
    eval_budget: float = 0.02
    """Short epochs: share of the time the per-epoch evaluations (with the prediction grid and best.pt) may
    take; an epoch's is skipped until training has run long enough since the last one (5 s at most: longer
    epochs are each evaluated), the last epoch's never. Every epoch is evaluated when a plateau schedule or
    early stopping decides on them (0 = every epoch)."""
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
    checkpoint_every: float = 10.0
    """Seconds between writes of last.pt and best.pt while training (0 = at every epoch end); always at the end."""
    stats_every: int = 0
    """Steps between the costlier statistics (gradient norms per layer, update/weight ratio); 0 = auto, about
    10 samples a second whatever the step time."""
    seed: int = 0
    """Seed for shuffling batches, dropout and anything else random in training."""
    deterministic: bool = False
    """Use deterministic algorithms only (slower; errors where none exists)."""
    snapshots: bool = True
    """Keep recent whole training states in memory (what rewind and the spike guard go back to). Not
    checkpoints: a killed process loses them."""
    snapshot_every: float = 0.0
    """Seconds between in-memory snapshots (0 = auto: every few seconds, at most ~1 % of the training time)."""
    snapshot_memory: float = 0.0
    """MB of host memory the snapshots may take (0 = auto: a tenth of the free memory, at most 4 GB); older
    snapshots thin out to fit (recent ones dense, older ones sparse)."""
    guard: str = "auto"
    """Spike guard on a non-finite loss or gradient, or a loss or gradient-norm spike: off, ask (pause and ask),
    rollback (to the newest snapshot before it, skipping its batches), stop; auto = ask in the app, rollback
    headless."""
    guard_z: float = 6.0
    """Spike guard: robust z-score (median and MAD of the recent steps) above which a loss or gradient norm is
    a spike."""
    guard_max_rollbacks: int = 3
    """Spike guard: rollbacks within 1,000 steps after which the run stops as diverged."""

    def check(self) -> Iterator[tuple[str, str]]:
        yield from _fraction("label_smoothing", self.label_smoothing)
        yield from optim.train_problems(self)  # betas, milestones, and what the chosen optimizer cannot take


@dataclass
class PredictConfig:
    POSITIVE: ClassVar = ("length",)
    NON_NEGATIVE: ClassVar = ("temperature", "top_k")
    MAXIMUM: ClassVar = {"length": 100_000, "top_k": 10_000_000, "temperature": 100.0}

    prompt: str = ""
    """Next-token data: the text each evaluation's generated sample starts from (empty = a new line)."""
    length: int = 200
    """Next-token data: tokens generated per sample (the prediction view; `predict --prompt` takes --tokens)."""
    temperature: float = 0.8
    """Sampling temperature: below 1 sharper, above 1 more random, 0 always the likeliest token."""
    top_k: int = 0
    """Sample among the k likeliest tokens only (0 = all)."""


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
    predict: PredictConfig = field(default_factory=PredictConfig)
    """What the prediction view generates (next-token data)."""

    def check(self) -> Iterator[tuple[str, str]]:
        yield from optim.precision_problems(self.train.optimizer, self.device.precision)
        yield from optim.parallel_problems(self.train.optimizer, self.device)
        if self.device.distributed and self.train.guard in ("ask", "rollback"):
            yield "train.guard", (f"{self.train.guard} rolls back to an in-memory snapshot, which data-parallel runs "
                                  "(device.devices) do not take; set train.guard to stop, off or auto (off there), "
                                  "or train on one device")
        if self.schema != SCHEMA_VERSION:
            yield "schema", f"version {self.schema!r} is not supported (this torchtui reads {SCHEMA_VERSION})"
        task = SOURCE_TASKS.get(self.data.source)
        if task is not None:
            problem = optim.loss_problem(task, self.train.loss)
            if problem:
                yield "train.loss", problem
        if self.model.kind == "cnn" and self.data.source in TABULAR_SOURCES:
            yield "model.kind", (f"cnn needs images (channels × height × width), but data.source "
                                 f"'{self.data.source}' gives a row of features (use mlp, or an image source: "
                                 f"digits, idx, torchvision)")

    @property
    def task(self) -> str | None:
        """regression, binary or multiclass where the source fixes it; None for csv (known once loaded)."""
        return SOURCE_TASKS.get(self.data.source)

    def to_dict(self) -> dict:
        return to_plain(self)

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False, allow_unicode=True)


# What may differ between a run's config.yaml (or the app's setup) and its checkpoint's config when the run
# resumes, besides the live fields (TrainConfig.LIVE, applied as live changes): its name and length, and where
# it trains, which is not what it is (a checkpoint loads on any device and any number of them).
RESUME_FREE = ("name", "description", "train.epochs", "train.eval_budget", "train.snapshots", "train.snapshot_every",
               "train.snapshot_memory", "train.guard", "train.guard_z", "train.guard_max_rollbacks",
               "device.device", "device.devices",
               "device.strategy", "device.threads", "predict.prompt", "predict.length", "predict.temperature",
               "predict.top_k")


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
