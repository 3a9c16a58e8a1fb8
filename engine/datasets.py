"""Real datasets: scikit-learn's bundled sets, torchvision datasets on disk, and the user's own Datasets."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from .config import DataConfig
from .datafiles import Arrays
from .errors import DataError
from .usercode import UserCodeError, call, load_object

DATASETS_EXTRA = "pip install 'torchtui[datasets]'"
# Datasets bigger than this (as float32) are streamed through a DataLoader instead of held in memory.
MAX_IN_MEMORY_BYTES = 2 << 30


# --- scikit-learn's bundled sets ---------------------------------------------------------------------


def read_bundled(cfg: DataConfig) -> tuple[Arrays, list[str]]:
    """digits (8×8 images), iris, wine or breast_cancer, shipped inside scikit-learn: nothing is downloaded."""
    try:
        from sklearn import datasets as skd
    except ImportError:
        raise DataError(f"data.source: '{cfg.source}' is read from scikit-learn, which is not installed "
                        f"({DATASETS_EXTRA})") from None
    bunch = getattr(skd, f"load_{cfg.source}")()
    y = torch.as_tensor(bunch.target, dtype=torch.long)
    if cfg.source == "digits":
        # 8×8 images with 17 grey levels (0–16), as one channel in [0, 1].
        x = torch.as_tensor(bunch.images, dtype=torch.float32).unsqueeze(1) / 16.0
        features = [f"px{r}{c}" for r in range(8) for c in range(8)]
    else:
        x = torch.as_tensor(bunch.data, dtype=torch.float32)
        features = [str(name) for name in bunch.feature_names]
    if cfg.limit:
        x, y = x[: cfg.limit], y[: cfg.limit]
    names = [str(name) for name in bunch.target_names]
    task = "binary" if len(names) == 2 else "multiclass"
    return Arrays(x, y, task, names), features


# --- torchvision -------------------------------------------------------------------------------------


def import_torchvision(field: str):
    """torchvision, or a DataError saying how to get a build that matches this torch."""
    try:
        import torchvision
    except Exception as err:  # noqa: BLE001 - a mismatched build fails with RuntimeError, not ImportError
        reason = str(err).strip().splitlines()[-1] if str(err).strip() else type(err).__name__
        raise DataError(f"{field}: torchvision is not usable here ({reason}); install the torchvision build "
                        f"that matches torch {torch.__version__}") from None
    return torchvision


def read_torchvision(cfg: DataConfig) -> Arrays | tuple[Any, Any, Any]:
    """MNIST, FashionMNIST or CIFAR10 as arrays; ImageFolder as (train, val, test) datasets."""
    tv = import_torchvision("data.dataset")
    if cfg.dataset == "ImageFolder":
        return _image_folders(tv, cfg)
    cls = getattr(tv.datasets, cfg.dataset)
    parts = []
    for train in (True, False):
        try:
            ds = cls(cfg.path, train=train, download=False)
        except (RuntimeError, OSError) as err:
            raise DataError(f"data.path: {cfg.dataset} not found under '{cfg.path}' ({str(err).strip()[:120]}); "
                            "torchtui never downloads: fetch the files on a machine with internet and copy them "
                            "there") from None
        x = torch.as_tensor(np.asarray(ds.data))
        if x.dim() == 4:  # CIFAR stores (N, H, W, C)
            x = x.permute(0, 3, 1, 2)
        elif x.dim() == 3:
            x = x.unsqueeze(1)
        y = torch.as_tensor(np.asarray(ds.targets), dtype=torch.long)
        if cfg.limit:
            x, y = x[: cfg.limit], y[: cfg.limit]
        parts.append((x.float().div_(255.0).contiguous(), y))
        names = [str(c) for c in ds.classes]
    (x, y), test = parts
    return Arrays(x, y, "binary" if len(names) == 2 else "multiclass", names, test=test)


def _image_folders(tv, cfg: DataConfig):
    """root/train, root/val, root/test when present (ImageFolder each), else root itself, split later."""
    from pathlib import Path

    root = Path(cfg.path).expanduser()
    if not root.is_dir():
        raise DataError(f"data.path: no folder '{cfg.path}' (ImageFolder wants root/<class>/<image files>)")
    steps = [tv.transforms.Resize((cfg.image_size, cfg.image_size))] if cfg.image_size else []
    transform = tv.transforms.Compose([*steps, tv.transforms.ToTensor()])

    def folder(path: Path):
        try:
            return tv.datasets.ImageFolder(str(path), transform=transform)
        except (FileNotFoundError, RuntimeError) as err:
            raise DataError(f"data.path: '{path}' is not an image folder ({err})") from None

    if (root / "train").is_dir():
        named = {name: folder(root / name) for name in ("train", "val", "test") if (root / name).is_dir()}
        return named["train"], named.get("val"), named.get("test")
    return folder(root), None, None


# --- the user's own code -----------------------------------------------------------------------------


def read_code(cfg: DataConfig) -> tuple[Any, Any, Any]:
    """Call path/to/file.py:function(**kwargs); it returns (train, val[, test]) datasets or (X, y) pairs."""
    try:
        fn, path = load_object(cfg.path, "data.path")
        result = call(fn, path, "data.path", f"{cfg.path}()", **cfg.kwargs)
    except UserCodeError as err:
        raise DataError(str(err)) from err.__cause__
    if not isinstance(result, (tuple, list)) or len(result) not in (2, 3):
        raise DataError(f"data.path: {cfg.path}() must return (train, val) or (train, val, test) datasets, "
                        f"got {type(result).__name__}" + (f" of {len(result)}" if isinstance(result, (tuple, list))
                                                          else ""))
    parts = list(result) + [None] * (3 - len(result))
    for name, part in zip(("train", "val", "test"), parts):
        if part is not None and not (hasattr(part, "__len__") and hasattr(part, "__getitem__")):
            raise DataError(f"data.path: {cfg.path}() returned a {type(part).__name__} as its {name} part; "
                            "expected a map-style Dataset (with __len__ and __getitem__) or an (X, y) pair")
    if len(parts[0]) == 0:
        raise DataError(f"data.path: {cfg.path}() returned an empty train dataset")
    return tuple(parts)


# --- datasets → tensors, or kept as datasets for streaming --------------------------------------------


def is_pair(part: Any) -> bool:
    """An (X, y) pair of tensors or arrays rather than a Dataset."""
    return (isinstance(part, (tuple, list)) and len(part) == 2
            and all(isinstance(v, (torch.Tensor, np.ndarray)) for v in part))


def sample_item(dataset: Any, field: str = "data.path") -> tuple[torch.Tensor, torch.Tensor]:
    """The first (x, y) of a dataset as tensors, checked for shape; x keeps its per-sample shape."""
    try:
        item = dataset[0]
    except Exception as err:  # noqa: BLE001
        raise DataError(f"{field}: reading sample 0 failed: {type(err).__name__}: {err}") from err
    if not isinstance(item, (tuple, list)) or len(item) < 2:
        raise DataError(f"{field}: each sample must be an (x, y) pair, got {type(item).__name__}")
    return torch.as_tensor(np.asarray(item[0]) if not isinstance(item[0], torch.Tensor) else item[0]), \
        torch.as_tensor(item[1])


def estimated_bytes(dataset: Any) -> int:
    """float32 bytes the whole dataset would take in memory, from its first sample."""
    x, _ = sample_item(dataset)
    return len(dataset) * max(1, x.numel()) * 4


def materialize(dataset: Any, limit: int = 0, field: str = "data.path") -> tuple[torch.Tensor, torch.Tensor]:
    """Every (x, y) of a map-style dataset stacked into two tensors (x float32; y as the dataset gives it)."""
    from torch.utils.data import DataLoader, Subset

    if limit and len(dataset) > limit:
        dataset = Subset(dataset, range(limit))
    xs, ys = [], []
    try:
        for xb, yb in DataLoader(dataset, batch_size=512, shuffle=False, num_workers=0):
            xs.append(torch.as_tensor(xb).float())
            ys.append(torch.as_tensor(yb))
    except Exception as err:  # noqa: BLE001 - the user's __getitem__ or collate may fail anywhere
        raise DataError(f"{field}: reading the dataset failed: {type(err).__name__}: {err} "
                        "(samples must be (x, y) with x of one shape)") from err
    return torch.cat(xs), torch.cat(ys)


def targets_of(dataset: Any) -> torch.Tensor:
    """All targets of a dataset without decoding its inputs where it exposes them (`targets`), else a pass."""
    given = getattr(dataset, "targets", None)
    if given is not None and len(given) == len(dataset):
        return torch.as_tensor(np.asarray(given))
    return torch.stack([torch.as_tensor(dataset[i][1]) for i in range(len(dataset))])


def fits_in_memory(dataset: Any) -> bool:
    return estimated_bytes(dataset) <= MAX_IN_MEMORY_BYTES


def evenly_sampled_inputs(dataset: Any, max_samples: int = 10_000) -> torch.Tensor:
    """Inputs of up to `max_samples` evenly spaced samples, stacked as float32 (to fit standardisation on)."""
    n = len(dataset)
    index = torch.linspace(0, n - 1, min(n, max_samples)).round().long().tolist()
    return torch.stack([torch.as_tensor(np.asarray(dataset[i][0])).float() for i in index])
