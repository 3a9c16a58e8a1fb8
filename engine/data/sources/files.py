"""Array files read without torchvision: MNIST-format IDX folders (gzipped or not) and .pt / .npz tensors."""

from __future__ import annotations

import gzip
import math
import zipfile
import zlib
from pathlib import Path

import numpy as np
import torch

from torchtui.engine.data import datasets, mapped
from torchtui.engine.data.arrays import Arrays, label_targets
from torchtui.engine.errors import DataError, reason_of
from torchtui.engine.files import not_a_file

# IDX type codes (http://yann.lecun.com/exdb/mnist/): code → big-endian numpy dtype.
_IDX_TYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
X_KEYS = ("x", "inputs", "features", "data", "images")
Y_KEYS = ("y", "targets", "labels", "target", "label")


# --- IDX --------------------------------------------------------------------------------------------


MAX_IDX_BYTES = 8 * 2 ** 30  # a declared size past this is refused before anything is inflated


def read_idx_file(path: Path) -> np.ndarray:
    """One IDX file (optionally .gz) as an array; a malformed file is a DataError naming it.

    The header is read first and the data after it only up to the size the header declares (plus one
    byte, to see whether more follows): a small .gz that inflates to gigabytes is refused without
    inflating it."""
    try:
        opener = gzip.open if path.suffix == ".gz" else open
        with opener(path, "rb") as fh:
            magic = fh.read(4)
            if len(magic) < 4 or magic[0] != 0 or magic[1] != 0 or magic[2] not in _IDX_TYPES:
                raise DataError(f"data.path: '{path}' is not an IDX file (bad magic number)")
            ndim, dtype = magic[3], np.dtype(_IDX_TYPES[magic[2]])
            dims = fh.read(4 * ndim)
            if ndim == 0 or len(dims) < 4 * ndim:
                raise DataError(f"data.path: '{path}' has a truncated IDX header")
            shape = tuple(int.from_bytes(dims[4 * i: 4 * i + 4], "big") for i in range(ndim))
            expected = math.prod(shape) * dtype.itemsize
            if expected > MAX_IDX_BYTES:
                raise DataError(f"data.path: '{path}' declares {expected:,} bytes of data (shape {shape}), more "
                                f"than the {MAX_IDX_BYTES:,} this reads; a corrupt or hostile header?")
            raw = fh.read(expected + 1)
    except (OSError, EOFError, zlib.error) as err:
        raise DataError(f"data.path: cannot read '{path}' ({err})") from None
    if len(raw) > expected:
        raise DataError(f"data.path: '{path}' holds more data than its header declares ({expected:,} bytes for "
                        f"shape {shape}); a corrupt file?")
    if len(raw) != expected:
        raise DataError(f"data.path: '{path}' holds {len(raw):,} data bytes, its header promises "
                        f"{expected:,} for shape {shape} (truncated or corrupt download?)")
    return np.frombuffer(raw, dtype=dtype).reshape(shape)


def _find(folder: Path, part: str, kind: str) -> Path | None:
    """The IDX file for part (train/test) and kind (images/labels): MNIST's names, gzipped or not."""
    tags = ("train",) if part == "train" else ("t10k", "test")
    candidates = [f for f in sorted(folder.iterdir()) if f.is_file() and "idx" in f.name
                  and kind in f.name and any(f.name.startswith(t) or f"-{t}" in f.name or f"_{t}" in f.name
                                             for t in tags)]
    return candidates[0] if candidates else None


def read_idx_folder(folder_text: str, limit: int = 0) -> Arrays:
    """Train (and test, when present) images and labels from an MNIST-style folder.

    Images become float32 (N, 1, H, W) in [0, 1]; labels class indices named by their values.
    """
    folder = Path(folder_text).expanduser()
    if not folder.is_dir():
        raise DataError(f"data.path: no folder '{folder_text}' (put MNIST-format files there, e.g. "
                        f"train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz, t10k-…)")
    parts = {}
    for part in ("train", "test"):
        images, labels = _find(folder, part, "images"), _find(folder, part, "labels")
        if part == "train" and (images is None or labels is None):
            present = ", ".join(f.name for f in sorted(folder.iterdir())[:8]) or "nothing"
            missing = "train-images-idx3-ubyte[.gz]" if images is None else "train-labels-idx1-ubyte[.gz]"
            raise DataError(f"data.path: '{folder_text}' has no {missing} (found: {present})")
        if images is not None and labels is not None:
            parts[part] = _idx_pair(images, labels, limit)
    x, y = parts["train"]
    classes = int(max(int(y.max()), *(int(t[1].max()) for t in parts.values()))) + 1
    return Arrays(x, y, "binary" if classes == 2 else "multiclass", [str(i) for i in range(classes)],
                  test=parts.get("test"))


def _idx_pair(images: Path, labels: Path, limit: int) -> tuple[torch.Tensor, torch.Tensor]:
    x, y = read_idx_file(images), read_idx_file(labels)
    if x.ndim not in (3, 4) or y.ndim != 1:
        raise DataError(f"data.path: '{images.name}' should hold N×H×W images and '{labels.name}' N labels, "
                        f"got shapes {x.shape} and {y.shape}")
    if len(x) != len(y):
        raise DataError(f"data.path: '{images.name}' has {len(x):,} images but '{labels.name}' "
                        f"{len(y):,} labels")
    if limit:
        x, y = x[:limit], y[:limit]
    if np.issubdtype(y.dtype, np.floating) or (len(y) and y.min() < 0):
        raise DataError(f"data.path: '{labels.name}' must hold class indices 0, 1, 2, …")
    images_t = torch.from_numpy(x.astype(np.float32))
    if x.dtype == np.uint8:
        images_t /= 255.0
    if images_t.dim() == 3:
        images_t = images_t.unsqueeze(1)
    return images_t, torch.from_numpy(y.astype(np.int64))


# --- .pt / .npz -------------------------------------------------------------------------------------


def read_tensor_file(path_text: str, limit: int = 0) -> Arrays:
    """X and y (and optional x_val/y_val, x_test/y_test) from a .pt (weights-only) or .npz file."""
    path = Path(path_text).expanduser()
    if not path.is_file():
        raise DataError(f"data.path: {not_a_file(path, repr(path_text))}")
    return _arrays_of(_load_mapping(path, path_text), path_text, limit)


def _arrays_of(mapping: dict, path_text: str, limit: int) -> Arrays:
    lower = {str(k).lower(): k for k in mapping}

    def pick(keys, suffix=""):
        for k in keys:
            if k + suffix in lower:
                return mapping[lower[k + suffix]]
        return None

    x, y = pick(X_KEYS), pick(Y_KEYS)
    if x is None or y is None:
        found = ", ".join(map(str, mapping)) or "nothing"
        raise DataError(f"data.path: '{path_text}' needs arrays named X and y (found: {found})")
    parts = {}
    for suffix, name in (("", "train"), ("_val", "val"), ("_test", "test")):
        px, py = (x, y) if not suffix else (pick(X_KEYS, suffix), pick(Y_KEYS, suffix))
        if px is not None or py is not None:
            if px is None or py is None:
                raise DataError(f"data.path: '{path_text}' has only one of x{suffix} and y{suffix}")
            parts[name] = _as_xy(px, py, path_text, suffix, limit)
    task, names, mapped = label_targets({name: y for name, (_, y) in parts.items()}, f"'{path_text}'")
    x_t, _ = parts["train"]
    return Arrays(x_t, mapped["train"], task, names,
                  test=(parts["test"][0], mapped["test"]) if "test" in parts else None,
                  val=(parts["val"][0], mapped["val"]) if "val" in parts else None)


def _load_mapping(path: Path, path_text: str) -> dict:
    if path.suffix == ".npz":
        try:
            with np.load(path, allow_pickle=False) as data:
                return {k: data[k] for k in data.files}
        except (OSError, ValueError, zipfile.BadZipFile, EOFError) as err:
            raise DataError(f"data.path: cannot read '{path_text}' as .npz ({err})") from None
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - torch raises many kinds for a bad or unsafe file
        raise DataError(f"data.path: cannot load '{path_text}' as tensors ({reason_of(err)})") from None
    if isinstance(data, (tuple, list)) and len(data) == 2:
        return {"x": data[0], "y": data[1]}
    if isinstance(data, dict):
        return data
    raise DataError(f"data.path: '{path_text}' must hold a dict with X and y, or a tuple (X, y); "
                    f"got {type(data).__name__}")


def _as_tensor(value, what: str, path_text: str) -> torch.Tensor:
    if isinstance(value, np.ndarray):
        if value.dtype.kind not in "biuf":
            raise DataError(f"data.path: {what} in '{path_text}' is not numeric (dtype {value.dtype})")
        return torch.from_numpy(np.ascontiguousarray(value))
    if isinstance(value, torch.Tensor):
        if value.is_complex():
            raise DataError(f"data.path: {what} in '{path_text}' is complex; real numbers only")
        return value.detach().cpu()
    raise DataError(f"data.path: {what} in '{path_text}' must be an array or tensor, got {type(value).__name__}")


def _as_xy(x, y, path_text: str, suffix: str, limit: int) -> tuple[torch.Tensor, torch.Tensor]:
    x, y = _as_tensor(x, f"x{suffix}", path_text), _as_tensor(y, f"y{suffix}", path_text)
    if limit:
        x, y = x[:limit], y[:limit]
    if x.dim() == 0 or len(x) == 0:
        raise DataError(f"data.path: x{suffix} in '{path_text}' holds no samples")
    if y.dim() == 0 or len(y) != len(x):
        raise DataError(f"data.path: x{suffix} has {len(x):,} samples but y{suffix} "
                        f"{'a single value' if y.dim() == 0 else f'{len(y):,}'} in '{path_text}'")
    if x.dim() == 1:
        x = x.unsqueeze(1)
    if x.dim() == 4 and x.shape[-1] in (1, 3, 4) and x.shape[1] not in (1, 3, 4):
        raise DataError(f"data.path: x{suffix} has shape {tuple(x.shape)}: images must be channels-first "
                        f"(N, C, H, W); convert with x.permute(0, 3, 1, 2)")
    scale = x.dtype == torch.uint8
    x = x.float()
    if scale:
        x = x / 255.0  # 8-bit images
        if x.dim() == 3:
            x = x.unsqueeze(1)  # (N, H, W) grey images → one channel
    bad = (~torch.isfinite(x)).flatten(1).any(1).nonzero()
    if len(bad):
        raise DataError(f"data.path: x{suffix} in '{path_text}' holds NaN or inf at sample {int(bad[0])} "
                        "(fill or drop it)")
    return x.contiguous(), y


def read(cfg) -> tuple[Arrays | tuple, list[str]]:
    """data.source idx (a folder) or tensors (a file, or a folder of .npy files).

    .npy files and the members of an uncompressed .npz are memory-mapped: when their samples (as float32) are
    more than the memory budget, or data.stream is set, they come back as Datasets that read a batch at a time
    from the map; otherwise they are read into memory like any .npz.
    """
    if cfg.source == "idx":
        return read_idx_folder(cfg.path, cfg.limit), []
    path = Path(cfg.path).expanduser()
    if path.is_dir():
        arrays = {p.stem: mapped.npy(p) for p in sorted(path.glob("*.npy"))}
        if not arrays:
            raise DataError(f"data.path: '{cfg.path}' is a folder without .npy files (expected X.npy and y.npy, "
                            "optionally x_val.npy/y_val.npy and x_test.npy/y_test.npy)")
    elif path.suffix.lower() == ".npy":
        raise DataError(f"data.path: '{cfg.path}' holds one array; put X.npy and y.npy in a folder and give the "
                        "folder (or save both in one .npz with np.savez)")
    else:
        arrays = mapped.npz_members(path) if path.suffix.lower() == ".npz" and path.is_file() else None
    if arrays is not None:
        parts = mapped.datasets(arrays, cfg.path, X_KEYS, Y_KEYS)
        floats = sum(len(p) * math.prod(p.sample_shape) * 4 for p in parts if p is not None)
        if cfg.stream or floats > datasets.memory_budget():
            return parts, []
        if path.is_dir():
            return _arrays_of({name: np.load(a.path, allow_pickle=False) for name, a in arrays.items()},
                              cfg.path, cfg.limit), []
    return read_tensor_file(cfg.path, cfg.limit), []
