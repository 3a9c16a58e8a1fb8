"""Datasets as splits: a source read, split train/val/test, standardised on train, wrapped as batch providers."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import torch

from torchtui.engine.config import DataConfig
from torchtui.engine.data import datasets as ds
from torchtui.engine.data import sources
from torchtui.engine.data.arrays import Arrays, label_targets
from torchtui.engine.data.augment import augment
from torchtui.engine.data.batches import Batch, StreamPart, TensorPart, generator
from torchtui.engine.data.sources import SOURCES
from torchtui.engine.errors import DataError

# Offsets so generating, splitting and epoch shuffles draw from unrelated streams of one seed.
_SPLIT_STREAM = 0x5EED


@dataclass
class Splits:
    """Train/val/test parts plus what a model and the charts need to know about them."""

    task: str
    train: Any                          # parts.TensorPart or parts.StreamPart
    val: Any
    test: Any
    input_shape: tuple[int, ...]        # one sample's shape: (F,), (T, F) or (C, H, W)
    n_classes: int
    n_targets: int
    class_names: list[str]
    feature_names: list[str]
    mean: torch.Tensor | None = None    # standardisation fitted on train (applied already, unless streamed)
    std: torch.Tensor | None = None
    flip: bool = False                  # augment training images
    crop: int = 0
    notes: list[str] = field(default_factory=list)  # things the user should hear about (logged as warnings)
    y_mean: torch.Tensor | None = None  # regression targets standardised with these (fitted on train)
    y_std: torch.Tensor | None = None
    encoder: dict | None = None         # a CSV's fitted tabular.Encoder, as a plain dict
    tokenizer: dict | None = None       # text data: the Tokenizer's spec(), so predict/export rebuild it

    # In-memory splits expose their tensors (the prediction view and tests read them).
    x_train = property(lambda self: self.train.x)
    y_train = property(lambda self: self.train.y)
    x_val = property(lambda self: self.val.x)
    y_val = property(lambda self: self.val.y)
    x_test = property(lambda self: self.test.x)
    y_test = property(lambda self: self.test.y)

    @property
    def n_features(self) -> int:
        """Inputs per sample once flattened (an MLP's input width)."""
        return math.prod(self.input_shape)

    @property
    def streamed(self) -> bool:
        return self.train.streamed

    def unscale_y(self, y: torch.Tensor) -> torch.Tensor:
        """Targets or predictions back in the data's units (a no-op unless targets were standardised)."""
        return y if self.y_std is None else y * self.y_std.to(y.device) + self.y_mean.to(y.device)

    def preprocessing(self) -> dict:
        """What `predict` needs to treat new inputs as these were treated: plain values, weights-only loadable."""
        cpu = {k: None if getattr(self, k) is None else getattr(self, k).cpu()
               for k in ("mean", "std", "y_mean", "y_std")}
        return {"task": self.task, "input_shape": list(self.input_shape), "class_names": list(self.class_names),
                "feature_names": list(self.feature_names), "n_targets": self.n_targets, "encoder": self.encoder,
                "tokenizer": self.tokenizer, **cpu}

    def sizes(self) -> dict[str, int]:
        return {"train": len(self.train), "val": len(self.val), "test": len(self.test)}

    def to(self, device) -> Splits:
        """A copy on `device`: in-memory tensors are moved once, so batches never cross the bus."""
        device = torch.device(device)
        moved = {name: getattr(self, name).to(device) for name in ("train", "val", "test")}
        stats = {name: None if getattr(self, name) is None else getattr(self, name).to(device)
                 for name in ("mean", "std", "y_mean", "y_std")}
        return dataclasses.replace(self, **moved, **stats)

    def overfit(self, n_samples: int) -> Splits:
        """The first `n_samples` train samples as train and val, no test, no augmentation: a model that can
        learn anything drives their loss to ~0 (the workflow's first debugging step)."""
        if self.streamed:
            raise DataError("train.overfit_batches: needs data held in memory (set data.stream: false)")
        part = TensorPart(self.train.x[:n_samples], self.train.y[:n_samples])
        empty = TensorPart(self.train.x[:0], self.train.y[:0])
        return dataclasses.replace(self, train=part, val=part, test=empty, flip=False, crop=0)

    def train_batches(self, order: torch.Tensor, batch_size: int, start_batch: int = 0) -> Iterator[Batch]:
        """Training batches in `order`, augmented when the config asks for it."""
        for xb, yb in self.train.batches(order, batch_size, start_batch):
            yield (augment(xb, self.flip, self.crop) if self.flip or self.crop else xb), yb


def load_data(cfg: DataConfig, device=None) -> Splits:
    """Generate or read the samples, split them, and standardise with statistics of the train split. Datasets
    larger than the memory budget (of the training device, when given) are streamed."""
    needs = SOURCES[cfg.source].path
    if needs and not cfg.path.strip():
        raise DataError(f"data.path: source '{cfg.source}' reads {needs}: set data.path")
    result, features = sources.read(cfg)
    if isinstance(result, Splits):  # a source that splits its own data (text: by position, before tokenising)
        return result
    if not isinstance(result, Arrays):
        return _from_datasets(result, cfg, ds.memory_budget(device))
    return _from_arrays(result, features if result.x.dim() == 2 else [], cfg)


def _from_arrays(a: Arrays, features: list[str], cfg: DataConfig) -> Splits:
    """Split the pool (keeping any val or test part the source brought), standardise, wrap as tensor parts."""
    val_fraction = 0.0 if a.val is not None else cfg.val_fraction
    test_fraction = 0.0 if a.test is not None else cfg.test_fraction
    notes = []
    if a.test is not None and cfg.test_fraction:
        notes.append(f"data.test_fraction ({cfg.test_fraction:g}) is ignored: this source brings its own test split")
    train, val, test = split(a.x, a.y, val_fraction, test_fraction, cfg.shuffle, cfg.seed)
    val = a.val if a.val is not None else val
    test = a.test if a.test is not None else test
    encoder = tokenizer = None
    if a.table is not None:  # rows of a table: fill values and categories come from the train rows only
        fitted = a.table.fit(train[0][:, 0].numpy())
        # Every row encoded in file order (each column read straight through), then each split's rows taken.
        every = torch.from_numpy(fitted.transform(a.table.cells))
        a.table = None  # the columns' memory goes back before the splits are standardised
        train, val, test = ((every.index_select(0, x[:, 0]), y) for x, y in (train, val, test))
        del every
        features, encoder = fitted.feature_names, fitted.to_dict()
        tokenizer = fitted.tokenizer.spec() if hasattr(fitted, "tokenizer") else None  # text columns' ids
    mean = std = None
    if cfg.standardize and train[0].is_floating_point():  # (token ids are never standardised)
        mean, std = fit_standardiser(train[0])
        train, val, test = ((((x - mean) / std), y) for x, y in (train, val, test))
    y_mean = y_std = None
    if a.task == "regression":
        y_mean, y_std, note = target_scaling(train[1], cfg.standardize_target)
        notes += note
        if y_std is not None:
            train, val, test = ((x, (y - y_mean) / y_std) for x, y in (train, val, test))
    classification = a.task != "regression"
    n_classes = len(a.class_names) if classification else 0
    if a.task == "tokens":  # the vocabulary: logits per id, and the embedding's rows
        n_classes = a.vocab_size or 1 + max(int(t.max()) for part in (train, val, test) for t in part if t.numel())
    return Splits(
        task=a.task, train=TensorPart(*train), val=TensorPart(*val), test=TensorPart(*test),
        input_shape=tuple(train[0].shape[1:]), n_classes=n_classes,
        n_targets=1 if classification else a.y.shape[1], class_names=a.class_names if classification else [],
        feature_names=features, mean=mean, std=std, flip=cfg.flip, crop=cfg.crop, notes=a.notes + notes,
        y_mean=y_mean, y_std=y_std, encoder=encoder, tokenizer=tokenizer,
    )


def target_scaling(y_train: torch.Tensor, mode: str) -> tuple[torch.Tensor | None, torch.Tensor | None, list[str]]:
    """Mean and std to standardise regression targets with (None, None when left alone), and any warning.

    auto scales targets whose size (root mean square) is outside [0.01, 10]: a loss on values in the
    thousands starts in the millions, and its gradients swamp any sensible lr.
    """
    if mode == "never" or not len(y_train):
        scale = float(y_train.pow(2).mean().sqrt()) if len(y_train) else 1.0
        if not 0.01 <= scale <= 10:
            return None, None, [(f"data.standardize_target is never, but the targets' scale is ~{scale:.3g}: the "
                                 "loss is ill-conditioned (use auto or always, or a smaller lr)")]
        return None, None, []
    mean = y_train.mean(0, keepdim=True)
    std = y_train.std(0, unbiased=False, keepdim=True)
    std = torch.where(std > 1e-6, std, torch.ones_like(std))
    scale = float(y_train.pow(2).mean().sqrt())
    if mode == "auto" and 0.01 <= scale <= 10:
        return None, None, []
    return mean[0], std[0], []


def split(x: torch.Tensor, y: torch.Tensor, val_fraction: float, test_fraction: float, shuffle: bool,
          seed: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """[(x, y) train, val, test]: the first samples train, the last test (after a seeded shuffle if asked)."""
    n_train, n_val, n_test = _split_sizes(len(x), val_fraction, test_fraction)
    if shuffle:
        order = torch.randperm(len(x), generator=generator(seed + _SPLIT_STREAM))
        x, y = x.index_select(0, order), y.index_select(0, order)  # (the same as x[order], in half the time)
    bounds = ((0, n_train), (n_train, n_train + n_val), (n_train + n_val, len(x)))
    return [(x[a:b], y[a:b]) for a, b in bounds]


def _split_sizes(n: int, val_fraction: float, test_fraction: float) -> tuple[int, int, int]:
    n_val, n_test = round(n * val_fraction), round(n * test_fraction)
    n_train = n - n_val - n_test
    if n_train <= 0:
        raise DataError(
            f"data.val_fraction: {n} samples leave none to train on "
            f"({n_val} val, {n_test} test; lower val_fraction/test_fraction or add samples)"
        )
    return n_train, n_val, n_test


def fit_standardiser(x_train: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and std per feature (rows), per feature over time (sequences) or per channel (images)."""
    dims = {2: (0,), 3: (0, 1), 4: (0, 2, 3)}.get(x_train.dim(), (0,))
    mean = x_train.mean(dims, keepdim=True)[0]
    std = x_train.std(dims, unbiased=False, keepdim=True)[0]
    # A constant feature would divide by ~0 and blow up val/test values that differ; leave its scale alone.
    std = torch.where(std > 1e-6, std, torch.ones_like(std))
    return mean, std


# --- Datasets (the user's code, ImageFolder): in memory when they fit, else streamed ------------------


def _from_datasets(parts: tuple, cfg: DataConfig, budget: int) -> Splits:
    train, val, test = (_limited(p, cfg.limit) for p in parts)
    if not cfg.stream and all(p is None or ds.is_pair(p) or ds.fits_in_memory(p, budget) for p in (train, val, test)):
        tensors = {name: _as_tensors(p) for name, p in (("train", train), ("val", val), ("test", test))
                   if p is not None}
        task, names, ys = label_targets({k: y for k, (_, y) in tensors.items()}, f"{cfg.path or cfg.source}")
        names = _class_names(train, names)
        x = tensors["train"][0]
        given = {k: (tensors[k][0], ys[k]) for k in ("val", "test") if k in tensors}
        arrays = Arrays(x, ys["train"], task, names, test=given.get("test"), val=given.get("val"))
        return _from_arrays(arrays, [], cfg)
    return _streamed(train, val, test, cfg)


def _token_ids(t: torch.Tensor) -> bool:
    """(N, T) integers: token ids (a model embeds them; they are never standardised or made floats)."""
    return t.dim() == 2 and not t.is_floating_point() and t.dtype != torch.bool


def _limited(part, limit: int):
    """The first `limit` samples of a part (all of them when limit is 0)."""
    if part is None or not limit:
        return part
    if ds.is_pair(part):
        return part[0][:limit], part[1][:limit]
    from torch.utils.data import Subset

    return Subset(part, range(min(limit, len(part))))


def _class_names(dataset, names: list[str]) -> list[str]:
    """A Dataset's own `classes` (ImageFolder's folder names) when they fit labels 0..k-1, else `names`."""
    given = getattr(getattr(dataset, "dataset", dataset), "classes", None)  # through a Subset too
    if isinstance(given, (list, tuple)) and len(given) == len(names) and names == [str(i) for i in range(len(names))]:
        return [str(c) for c in given]
    return names


def _as_tensors(part) -> tuple[torch.Tensor, torch.Tensor]:
    if ds.is_pair(part):
        x, y = torch.as_tensor(part[0]), torch.as_tensor(part[1])
        if _token_ids(x) and _token_ids(y) and x.shape == y.shape:  # next-token windows: ids stay ids
            return x.long(), y
        return x.float(), y
    return ds.materialize(part)


def _streamed(train, val, test, cfg: DataConfig) -> Splits:
    """Splits whose parts read their Dataset through a DataLoader; val/test cut from train when missing."""
    from torch.utils.data import Subset

    if any(ds.is_pair(p) for p in (train, val, test)):
        raise DataError("data.stream: streaming needs Datasets for every part, not (X, y) arrays")
    ys = {name: ds.targets_of(p) for name, p in (("train", train), ("val", val), ("test", test)) if p is not None}
    task, names, _ = label_targets(ys, cfg.path or cfg.source)
    names = _class_names(train, names)
    if val is None or test is None:
        n_train, n_val, _ = _split_sizes(len(train), 0.0 if val is not None else cfg.val_fraction,
                                         0.0 if test is not None else cfg.test_fraction)
        order = (torch.randperm(len(train), generator=generator(cfg.seed + _SPLIT_STREAM)) if cfg.shuffle
                 else torch.arange(len(train))).tolist()
        pool = train
        train = Subset(pool, order[:n_train])
        val = val if val is not None else Subset(pool, order[n_train:n_train + n_val])
        test = test if test is not None else Subset(pool, order[n_train + n_val:])
    x0, _ = ds.sample_item(train)
    # The same statistics as in-memory data get, fitted on a sample of the train split.
    mean, std = fit_standardiser(ds.evenly_sampled_inputs(train)) if cfg.standardize else (None, None)
    values = torch.unique(torch.cat([y.long() for y in ys.values()])) if task != "regression" else None
    prepare = _Prepare(task, values, mean, std)
    parts = {name: StreamPart(p, prepare, cfg.workers) for name, p in (("train", train), ("val", val), ("test", test))}
    n_targets = 1 if task != "regression" else (ys["train"].flatten(1).shape[1] if ys["train"].dim() > 1 else 1)
    return Splits(task=task, **parts, input_shape=tuple(x0.shape), n_classes=len(names), n_targets=n_targets,
                  class_names=names, feature_names=[], mean=mean, std=std, flip=cfg.flip, crop=cfg.crop)


class _Prepare:
    """Per streamed batch, on the device: float inputs, standardised; labels as indices 0..k-1."""

    def __init__(self, task: str, values: torch.Tensor | None, mean, std):
        self.task, self.mean, self.std = task, mean, std
        # Labels that are not already 0..k-1 are looked up in the sorted distinct values.
        same = values is None or values.tolist() == list(range(len(values)))
        self.values = None if same else values

    def __call__(self, xb: torch.Tensor, yb: torch.Tensor) -> Batch:
        x = xb.float()
        if self.mean is not None:
            x = (x - self.mean.to(x.device)) / self.std.to(x.device)
        if self.task == "regression":
            return x, yb.float().reshape(len(yb), -1)
        if self.values is not None:
            return x, torch.searchsorted(self.values.to(yb.device), yb.long())
        return x, yb.long()


