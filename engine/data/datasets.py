"""Helpers for map-style Datasets: (X, y) pairs, one sample, size estimates, materialising, targets."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from torchtui.engine.errors import DataError

# Datasets bigger than this (as float32) are streamed through a DataLoader instead of held in memory.
MAX_IN_MEMORY_BYTES = 2 << 30


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
    from torchtui.engine.data.mapped import collate

    xs, ys = [], []
    try:
        for xb, yb in DataLoader(dataset, batch_size=512, shuffle=False, num_workers=0, collate_fn=collate):
            xs.append(torch.as_tensor(xb).float())
            ys.append(torch.as_tensor(yb))
    except DataError:
        raise
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


def fits_in_memory(dataset: Any, budget: int | None = None) -> bool:
    return estimated_bytes(dataset) <= (memory_budget() if budget is None else budget)


def memory_budget(device=None) -> int:
    """Bytes the data may take held in memory: MAX_IN_MEMORY_BYTES, or half the host's available memory when
    that is less, or on a GPU half its free memory when that is less (past it, data is streamed)."""
    budget = MAX_IN_MEMORY_BYTES
    try:
        with open("/proc/meminfo") as handle:
            fields = dict(line.split(":", 1) for line in handle)
        budget = min(budget, int(fields["MemAvailable"].split()[0]) * 1024 // 2)
    except (OSError, KeyError, ValueError):
        pass  # not Linux: the fixed limit alone
    if device is not None and torch.device(device).type == "cuda":
        free, _ = torch.cuda.mem_get_info(torch.device(device))
        budget = min(budget, free // 2)
    return budget


def evenly_sampled_inputs(dataset: Any, max_samples: int = 10_000) -> torch.Tensor:
    """Inputs of up to `max_samples` evenly spaced samples, stacked as float32 (to fit standardisation on)."""
    n = len(dataset)
    index = torch.linspace(0, n - 1, min(n, max_samples)).round().long().tolist()
    return torch.stack([torch.as_tensor(np.asarray(dataset[i][0])).float() for i in index])
