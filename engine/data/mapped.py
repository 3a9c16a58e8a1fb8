"""Arrays larger than memory: `.npy` files (a folder of them, or the members of an uncompressed `.npz`)
read a batch of rows at a time, by position in the file, never whole.

The arrays are located by their .npy headers, as np.load(mmap_mode="r") does, but a batch's rows are read
with pread (runs of neighbouring rows in one call), not through a memory map: on this machine's kernel
(6.18, ext4 with large folios) touching one element of a map made 2 MiB resident, so a batch of 256 random
rows from a 94 MiB file made all of it resident, and a 2 GiB file would have been resident within a few
batches. A pread puts only the batch's bytes in the process; the page cache keeps the file for the next
epoch without counting in its RSS. It was also faster than a map released after each part of a batch
(1.0 ms vs 2.0 ms per 256 rows of 4 KiB, tests/engine/test_mapped.py measures the RSS side).
"""

from __future__ import annotations

import os
import struct
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from torchtui.engine.errors import DataError


@dataclass(frozen=True)
class MappedArray:
    """Where an array lies in a file (a .npy, or an uncompressed .npz member): a description, so a DataLoader
    worker it is pickled to opens the file itself rather than receiving the data."""

    path: str
    offset: int
    dtype: str
    shape: tuple[int, ...]
    fortran: bool = False

    def open(self) -> np.memmap:
        """A read-only map of the array (for y, read whole, and Fortran-ordered x)."""
        return np.memmap(self.path, dtype=np.dtype(self.dtype), mode="r", offset=self.offset, shape=self.shape,
                         order="F" if self.fortran else "C")

    @property
    def row_bytes(self) -> int:
        return int(np.prod(self.shape[1:], dtype=np.int64)) * np.dtype(self.dtype).itemsize


def npy(path: Path) -> MappedArray:
    """The array of a .npy file, by its header."""
    with open(path, "rb") as handle:
        return _described(handle, str(path), 0, f"'{path.name}'")


def npz_members(path: Path) -> dict[str, MappedArray] | None:
    """Each member of an .npz stored uncompressed (np.savez), or None when any is compressed (np.savez_compressed:
    those are inflated into memory instead)."""
    try:
        with zipfile.ZipFile(path) as archive:
            infos = [i for i in archive.infolist() if i.filename.endswith(".npy")]
    except (OSError, zipfile.BadZipFile):
        return None
    if not infos or any(i.compress_type != zipfile.ZIP_STORED for i in infos):
        return None
    members = {}
    with open(path, "rb") as handle:
        for info in infos:
            handle.seek(info.header_offset)
            local = handle.read(30)
            if len(local) < 30 or local[:4] != b"PK\x03\x04":
                return None
            name_length, extra_length = struct.unpack("<HH", local[26:30])
            start = info.header_offset + 30 + name_length + extra_length
            handle.seek(start)
            members[info.filename[:-4]] = _described(handle, str(path), start, f"'{path.name}' member {info.filename}")
    return members


def _described(handle, path: str, start: int, what: str) -> MappedArray:
    fmt = np.lib.format
    try:
        version = fmt.read_magic(handle)
        reader = fmt.read_array_header_1_0 if version == (1, 0) else fmt.read_array_header_2_0
        shape, fortran, dtype = reader(handle)
    except ValueError as err:
        raise DataError(f"data.path: {what} is not a .npy array ({err})") from None
    if dtype.hasobject:
        raise DataError(f"data.path: {what} holds Python objects; save numbers (np.save of a numeric array)")
    return MappedArray(path, handle.tell(), dtype.str, tuple(int(n) for n in shape), bool(fortran))


class MappedRows(torch.utils.data.Dataset):
    """Samples (x, y) of an x in a file and an in-memory y. `__getitems__` reads a whole batch at once (a
    DataLoader calls it instead of one `__getitem__` per sample) and returns it already collated: float32 x
    (8-bit images scaled to 0–1, grey images given their channel), y as stored. Pickled (to a DataLoader
    worker) without its open file: each process opens its own."""

    def __init__(self, x: MappedArray, y: np.ndarray, name: str = "x"):
        self.x, self.targets, self.name = x, y, name
        shape = x.shape[1:]
        self.scale = np.dtype(x.dtype) == np.uint8
        if not shape:
            shape = (1,)
        elif self.scale and len(shape) == 2:
            shape = (1, *shape)  # (N, H, W) grey images → one channel
        self.sample_shape = shape
        self._fd: int | None = None

    def __len__(self) -> int:
        return self.x.shape[0]

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_fd": None}

    def __del__(self):
        if getattr(self, "_fd", None) is not None:
            os.close(self._fd)

    def __getitem__(self, index: int):
        xb, yb = self.__getitems__([index])
        return xb[0], yb[0]

    def __getitems__(self, indices) -> tuple[torch.Tensor, torch.Tensor]:
        index = np.asarray(indices, dtype=np.int64)
        rows = self._rows(index).astype(np.float32, copy=False)
        bad = ~np.isfinite(rows.reshape(len(rows), -1)).all(1)
        if bad.any():
            raise DataError(f"data.path: {self.name} holds NaN or inf at sample {int(index[np.argmax(bad)])} "
                            "(fill or drop it)")
        if self.scale:
            rows *= 1 / 255
        return torch.from_numpy(rows.reshape(len(rows), *self.sample_shape)), torch.as_tensor(self.targets[index])

    def _rows(self, index: np.ndarray) -> np.ndarray:
        """The rows at `index` (any order, repeats allowed), in the array's own dtype."""
        if self.x.fortran:  # columns are contiguous, rows are not: gather through a map
            return np.asarray(self.x.open()[index])
        if self._fd is None:
            self._fd = os.open(self.x.path, os.O_RDONLY)
        wanted, inverse = np.unique(index, return_inverse=True)  # file order: neighbours share one read
        out = np.empty((len(wanted), *self.x.shape[1:]), dtype=np.dtype(self.x.dtype))
        raw = memoryview(out.reshape(-1).view(np.uint8))
        size = self.x.row_bytes
        starts = np.flatnonzero(np.diff(wanted, prepend=-2) != 1).tolist()
        for first, end in zip(starts, starts[1:] + [len(wanted)]):
            _read_exact(self._fd, raw[first * size:end * size], self.x.offset + int(wanted[first]) * size, self)
        return out[inverse]


def _read_exact(fd: int, into: memoryview, offset: int, rows: MappedRows) -> None:
    while len(into):
        got = os.preadv(fd, [into], offset)
        if got <= 0:
            raise DataError(f"data.path: '{rows.x.path}' ends before the rows its header promises ({rows.name}); "
                            "save it again")
        into, offset = into[got:], offset + got


def collate(batch):
    """A DataLoader's collate: a batch `__getitems__` already made (a tuple of two tensors) as it is, else
    torch's default_collate of the samples."""
    if isinstance(batch, tuple) and len(batch) == 2 and all(isinstance(b, torch.Tensor) for b in batch):
        return batch
    from torch.utils.data import default_collate

    return default_collate(batch)


def datasets(arrays: dict[str, MappedArray], path_text: str, x_keys, y_keys) -> tuple:
    """(train, val, test) MappedRows of the arrays named X and y (x_val/y_val, x_test/y_test optional)."""
    lower = {name.lower(): name for name in arrays}

    def pick(keys, suffix=""):
        return next((arrays[lower[k + suffix]] for k in keys if k + suffix in lower), None)

    parts = []
    for suffix in ("", "_val", "_test"):
        x, y = pick(x_keys, suffix), pick(y_keys, suffix)
        if not suffix and (x is None or y is None):
            found = ", ".join(sorted(arrays)) or "nothing"
            raise DataError(f"data.path: '{path_text}' needs arrays named X and y (found: {found})")
        if (x is None) != (y is None):
            raise DataError(f"data.path: '{path_text}' has only one of x{suffix} and y{suffix}")
        parts.append(None if x is None else _rows(x, y, path_text, suffix))
    return tuple(parts)


def _rows(x: MappedArray, y: MappedArray, path_text: str, suffix: str) -> MappedRows:
    if np.dtype(x.dtype).kind not in "biuf":
        raise DataError(f"data.path: x{suffix} in '{path_text}' is not numeric (dtype {np.dtype(x.dtype)})")
    if np.dtype(y.dtype).kind not in "biuf":
        raise DataError(f"data.path: y{suffix} in '{path_text}' is not numeric (dtype {np.dtype(y.dtype)})")
    if not x.shape or x.shape[0] == 0:
        raise DataError(f"data.path: x{suffix} in '{path_text}' holds no samples")
    if not y.shape or y.shape[0] != x.shape[0]:
        raise DataError(f"data.path: x{suffix} has {x.shape[0]:,} samples but y{suffix} "
                        f"{'a single value' if not y.shape else f'{y.shape[0]:,}'} in '{path_text}'")
    if len(x.shape) == 4 and x.shape[-1] in (1, 3, 4) and x.shape[1] not in (1, 3, 4):
        raise DataError(f"data.path: x{suffix} has shape {x.shape}: images must be channels-first "
                        f"(N, C, H, W); convert with x.transpose(0, 3, 1, 2)")
    return MappedRows(x, np.array(y.open()), f"x{suffix} in '{path_text}'")
