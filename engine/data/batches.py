"""One split of the data, batched two ways: tensors held on the device (sliced by index), or a DataLoader.

Both give the loop the same interface: `batches(order, batch_size, start_batch)` for training,
`chunks(size)` for evaluation and `sample(n)` for previews, every batch already on the training device.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import torch

Batch = tuple[torch.Tensor, torch.Tensor]
_MASK63 = (1 << 63) - 1


def generator(seed: int) -> torch.Generator:
    """A CPU generator for `seed` (any int: it is folded into the 63 bits torch accepts)."""
    return torch.Generator().manual_seed(seed & _MASK63)


def epoch_permutation(n: int, seed: int, epoch: int, device) -> torch.Tensor:
    """The sample order for one epoch: the same (seed, epoch) gives the same order, so resumes replay it."""
    # Mix seed and epoch so that (seed, epoch + 1) and (seed + 1, epoch) give unrelated orders.
    gen = generator(seed * 0x9E3779B97F4A7C15 + epoch)
    # randperm on the CPU generator, then one copy: the same order on every device. To a GPU from pinned
    # memory, asynchronously: a copy from pageable memory was a host sync every epoch.
    order = torch.randperm(n, generator=gen)
    if torch.device(device).type == "cuda":
        return order.pin_memory().to(device, non_blocking=True)
    return order.to(device)


def num_batches(n: int, batch_size: int) -> int:
    """Batches in an epoch of n samples; batch_size 0 means the whole split at once."""
    if n <= 0:
        return 0
    return 1 if batch_size <= 0 else -(-n // batch_size)


def iter_batches(x: torch.Tensor, y: torch.Tensor, perm: torch.Tensor, batch_size: int,
                 start_batch: int = 0) -> Iterator[Batch]:
    """(x, y) batches in `perm` order, the last one possibly short; `start_batch` skips the first ones."""
    n = len(perm)
    size = batch_size if batch_size > 0 else max(n, 1)
    for start in range(start_batch * size, n, size):
        idx = perm[start: start + size]
        yield x[idx], y[idx]


def even_index(n: int, k: int, device=None) -> torch.Tensor:
    """Up to k evenly spaced indices into n items (all of them when k >= n)."""
    if n <= 0:
        return torch.zeros(0, dtype=torch.long, device=device)
    return torch.linspace(0, n - 1, min(n, max(1, k)), device=device).round().long()


class TensorPart:
    """A split held as two tensors; moved to the device once, then batched by index slicing (no DataLoader)."""

    streamed = False

    def __init__(self, x: torch.Tensor, y: torch.Tensor):
        self.x, self.y = x, y

    def __len__(self) -> int:
        return len(self.x)

    def to(self, device) -> TensorPart:
        # Host-to-GPU copies may overlap; a GPU-to-host copy must finish before the CPU reads it.
        non_blocking = torch.device(device).type == "cuda"
        return TensorPart(self.x.to(device, non_blocking=non_blocking), self.y.to(device, non_blocking=non_blocking))

    def batches(self, order: torch.Tensor, batch_size: int, start_batch: int = 0) -> Iterator[Batch]:
        return iter_batches(self.x, self.y, order, batch_size, start_batch)

    def chunks(self, size: int) -> Iterator[Batch]:
        for i in range(0, len(self.x), size):
            yield self.x[i:i + size], self.y[i:i + size]

    def sample(self, k: int) -> Batch:
        index = even_index(len(self.x), k, self.x.device)
        return self.x[index], self.y[index]


class StreamPart:
    """A split read from a map-style Dataset through a DataLoader, for data that cannot sit in memory.

    Batches are moved to the device, then standardised and relabelled there; `prepare` holds that step.
    """

    streamed = True

    def __init__(self, dataset: Any, prepare, workers: int = 0, device: torch.device | str = "cpu"):
        self.dataset, self.prepare, self.workers = dataset, prepare, workers
        self.device = torch.device(device)
        self._loaders: dict = {}  # (batch size, ordered) → DataLoader, kept: its worker processes persist

    def __len__(self) -> int:
        return len(self.dataset)

    def to(self, device) -> StreamPart:
        return StreamPart(self.dataset, self.prepare, self.workers, device)

    def _loader(self, batch_size: int, order: list[int] | None = None):
        from torch.utils.data import DataLoader

        from torchtui.engine.data.mapped import collate

        key = (batch_size, order is not None)
        loader = self._loaders.get(key)
        if loader is None:
            # One loader per batch size and use, its workers kept from epoch to epoch (persistent_workers) and
            # fed the epoch's order through the sampler; batches come in pinned memory for a GPU.
            sampler = _Order() if order is not None else None
            loader = self._loaders[key] = DataLoader(
                self.dataset, batch_size=batch_size, sampler=sampler, shuffle=False, num_workers=self.workers,
                pin_memory=self.device.type == "cuda", collate_fn=collate, persistent_workers=self.workers > 0)
        if order is not None:
            loader.sampler.order = order
        return loader

    def _moved(self, loader) -> Iterator[Batch]:
        non_blocking = self.device.type == "cuda"
        for xb, yb in loader:
            yield self.prepare(xb.to(self.device, non_blocking=non_blocking),
                               torch.as_tensor(yb).to(self.device, non_blocking=non_blocking))

    def batches(self, order: torch.Tensor, batch_size: int, start_batch: int = 0) -> Iterator[Batch]:
        size = batch_size if batch_size > 0 else max(len(self), 1)
        indices = order[start_batch * size:].tolist()
        return self._moved(self._loader(size, indices))

    def chunks(self, size: int) -> Iterator[Batch]:
        return self._moved(self._loader(size))

    def sample(self, k: int) -> Batch:
        from torch.utils.data import default_collate

        items = [self.dataset[i] for i in even_index(len(self), k).tolist()]
        xb, yb = default_collate([(x, y) for x, y, *_ in items])
        return self.prepare(xb.to(self.device), torch.as_tensor(yb).to(self.device))


class _Order:
    """A DataLoader sampler whose order is set before each epoch (the loader, and its workers, stay)."""

    def __init__(self):
        self.order: list[int] = []

    def __iter__(self):
        return iter(self.order)

    def __len__(self) -> int:
        return len(self.order)
