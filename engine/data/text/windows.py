"""Next-token windows of one split's token stream, batched like the other parts (see engine/data/batches.py).

Window i is tokens [i·T, i·T + T) as input and the same shifted by one as target (T = data.block_size);
windows do not overlap, and one split's stream never reaches into another's. A batch is gathered by index
arithmetic from the stream: held in memory on the training device (the gather runs there, no host copy per
step), or, for a cache larger than the memory budget, read from the .bin with one pread per window (as
engine/data/mapped.py reads rows, so the page cache, not the process, holds the file).
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import numpy as np
import torch

from torchtui.engine.data.batches import Batch, even_index


class WindowPart:
    """One split's windows over `tokens` (a 1-D int tensor in memory) or a [start, end) range of a .bin file."""

    def __init__(self, block_size: int, tokens: torch.Tensor | None = None, file: tuple | None = None,
                 limit: int = 0, device: torch.device | str = "cpu"):
        self.block_size, self.tokens, self.file, self.limit = block_size, tokens, file, limit
        self.device = torch.device(device)
        self.streamed = tokens is None
        n_tokens = len(tokens) if tokens is not None else file[2] - file[1]
        self.n = max(0, (n_tokens - 1) // block_size)  # each window needs its block and one token more
        if limit:
            self.n = min(self.n, limit)
        self._offsets = torch.arange(block_size + 1, device=self.device)
        self._fd: int | None = None

    def __len__(self) -> int:
        return self.n

    def __del__(self):
        if getattr(self, "_fd", None) is not None:
            os.close(self._fd)

    def to(self, device) -> WindowPart:
        device = torch.device(device)
        tokens = None if self.tokens is None else self.tokens.to(device, non_blocking=device.type == "cuda")
        return WindowPart(self.block_size, tokens, self.file, self.limit, device)

    def windows(self, index: torch.Tensor) -> Batch:
        """(x, y) int64 of the windows at `index` (any order)."""
        if self.tokens is not None:
            at = index.to(self.device).unsqueeze(1) * self.block_size + self._offsets
            rows = self.tokens[at].long()
        else:
            rows = torch.from_numpy(self._read(index.cpu().numpy())).to(self.device, non_blocking=True)
        return rows[:, :-1], rows[:, 1:]

    def _read(self, index: np.ndarray) -> np.ndarray:
        path, start, _, dtype = self.file
        dtype = np.dtype(dtype)
        if self._fd is None:
            self._fd = os.open(path, os.O_RDONLY)
        width = self.block_size + 1
        out = np.empty((len(index), width), dtype=dtype)
        for row, i in enumerate(index.tolist()):
            into = memoryview(out[row].view(np.uint8))
            offset = (start + i * self.block_size) * dtype.itemsize
            while len(into):
                got = os.preadv(self._fd, [into], offset)
                if got <= 0:
                    raise OSError(f"the token cache '{path}' is shorter than its index says")
                into, offset = into[got:], offset + got
        return out.astype(np.int64)

    def batches(self, order: torch.Tensor, batch_size: int, start_batch: int = 0) -> Iterator[Batch]:
        size = batch_size if batch_size > 0 else max(self.n, 1)
        if self.streamed:
            order = order.cpu()  # once an epoch: each batch's index is then read on the host
        for at in range(start_batch * size, len(order), size):
            yield self.windows(order[at:at + size])

    def chunks(self, size: int) -> Iterator[Batch]:
        for at in range(0, self.n, size):
            yield self.windows(torch.arange(at, min(self.n, at + size)))

    def sample(self, k: int) -> Batch:
        return self.windows(even_index(self.n, k))

    # Held in memory, the windows as tensors too (Splits.overfit and the prediction view slice them).
    @property
    def x(self) -> torch.Tensor:
        return self.windows(torch.arange(self.n))[0]

    @property
    def y(self) -> torch.Tensor:
        return self.windows(torch.arange(self.n))[1]
