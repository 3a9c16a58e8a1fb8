"""Arrays: what a source returns (inputs, targets, task, class names, given val/test parts), and label mapping."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

from torchtui.engine.errors import DataError


@dataclass
class Arrays:
    """Samples read from files: x (N, …) float32, y class indices or float targets, and any given test/val part."""

    x: torch.Tensor            # float32, or int64 token ids (N, T)
    y: torch.Tensor
    task: str
    class_names: list[str]
    test: tuple[torch.Tensor, torch.Tensor] | None = None
    val: tuple[torch.Tensor, torch.Tensor] | None = None
    table: Any = None          # a CSV's cells (csvfile.CsvTable): x holds row numbers, encoded once split
    notes: list[str] = field(default_factory=list)  # things the user should hear about (rows dropped, …)
    vocab_size: int = 0        # task "tokens": ids are below this (0: the largest id seen + 1)


def label_targets(ys: dict[str, torch.Tensor], where: str) -> tuple[str, list[str], dict[str, torch.Tensor]]:
    """The task from the targets' dtype and y per part as the loop wants it.

    Integers or bools are class labels: sorted distinct values become indices 0..k-1 (named by value).
    Integer (N, T) targets are next-token ids (task "tokens"), kept as they are.
    Floats are regression targets, shaped (N, targets).
    """
    if all(not y.is_floating_point() and y.dtype != torch.bool and y.dim() == 2 for y in ys.values()):
        return "tokens", [], {name: y.long() for name, y in ys.items()}
    if all(not y.is_floating_point() for y in ys.values()):
        if any(y.dim() != 1 for y in ys.values()):
            raise DataError(f"data.path: integer y in {where} must be one class label per sample (1-D)")
        values = torch.unique(torch.cat([y.long() for y in ys.values()]))
        if len(values) < 2:
            raise DataError(f"data.path: y in {where} holds one class only; nothing to learn")
        names = [str(v) for v in values.tolist()]
        if values.tolist() == list(range(len(values))):
            mapped = {name: y.long() for name, y in ys.items()}
        else:
            mapped = {name: torch.searchsorted(values, y.long()) for name, y in ys.items()}
        return ("binary" if len(values) == 2 else "multiclass"), names, mapped
    mapped = {}
    for name, y in ys.items():
        y = y.float()
        y = y.unsqueeze(1) if y.dim() == 1 else y.flatten(1)
        if not bool(torch.isfinite(y).all()):
            k = int((~torch.isfinite(y)).any(1).nonzero()[0])
            raise DataError(f"data.path: y in {where} holds NaN or inf at sample {k} (fill or drop it)")
        mapped[name] = y
    if len({y.shape[1] for y in mapped.values()}) > 1:
        raise DataError(f"data.path: the y arrays in {where} have different numbers of targets")
    return "regression", [], mapped
