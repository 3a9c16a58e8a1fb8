"""Synthetic datasets (line, moons, circles, xor, spiral, blobs, sine): seeded generators returning tensors."""

from __future__ import annotations

import math

import torch

from torchtui.engine.config import DataConfig
from torchtui.engine.data.arrays import Arrays
from torchtui.engine.data.batches import generator
from torchtui.engine.data.sources import SOURCES
from torchtui.engine.errors import DataError


def read(cfg: DataConfig) -> tuple[Arrays, list[str]]:
    """The source's samples, with feature names for rows (x for line, x0, x1, … otherwise; none for sine)."""
    x, y, task, names = generate(cfg)
    features = ["x"] if cfg.source == "line" else [] if x.dim() > 2 else [f"x{i}" for i in range(x.shape[1])]
    return Arrays(x, y, task, names), features


def generate(cfg: DataConfig) -> tuple[torch.Tensor, torch.Tensor, str, list[str]]:
    """X (float32, N×F), y, the task and class names for a synthetic source; the same seed, the same data."""
    make = _GENERATORS.get(cfg.source)
    if make is None:
        choices = ", ".join(_GENERATORS)
        raise DataError(f"data.source: '{cfg.source}' is not a synthetic source (choose one of: {choices})")
    if cfg.source != "line" and cfg.n_samples < 1:
        raise DataError(f"data.n_samples: must be at least 1, got {cfg.n_samples!r}")
    x, y = make(cfg, generator(cfg.seed))
    task = SOURCES[cfg.source].task
    if task == "regression":
        return x, y, task, []
    n_classes = 2 if task == "binary" else cfg.classes
    return x, y, task, [str(i) for i in range(n_classes)]


def _line(cfg: DataConfig, gen: torch.Generator):
    if cfg.step <= 0 or cfg.end <= cfg.start:
        raise DataError(f"data.step: start {cfg.start!r}, end {cfg.end!r}, step {cfg.step!r} give no points")
    x = torch.arange(cfg.start, cfg.end, cfg.step, dtype=torch.float32).unsqueeze(1)
    y = cfg.weight * x + cfg.bias
    if cfg.noise > 0:
        y = y + cfg.noise * torch.randn(y.shape, generator=gen)
    return x, y


def _moons(cfg: DataConfig, gen: torch.Generator):
    n_out = cfg.n_samples // 2
    n_in = cfg.n_samples - n_out
    outer = torch.linspace(0, math.pi, n_out)
    inner = torch.linspace(0, math.pi, n_in)
    x = torch.cat([
        torch.stack([outer.cos(), outer.sin()], 1),
        torch.stack([1 - inner.cos(), 0.5 - inner.sin()], 1),
    ])
    y = torch.cat([torch.zeros(n_out), torch.ones(n_in)]).long()
    return x + cfg.noise * torch.randn(x.shape, generator=gen), y


def _circles(cfg: DataConfig, gen: torch.Generator):
    n_out = cfg.n_samples // 2
    n_in = cfg.n_samples - n_out
    # Angles stop short of 2π, as in sklearn, so the first and last points do not coincide.
    outer = torch.arange(n_out) * (2 * math.pi / max(n_out, 1))
    inner = torch.arange(n_in) * (2 * math.pi / max(n_in, 1))
    x = torch.cat([
        torch.stack([outer.cos(), outer.sin()], 1),
        cfg.factor * torch.stack([inner.cos(), inner.sin()], 1),
    ])
    y = torch.cat([torch.zeros(n_out), torch.ones(n_in)]).long()
    return x + cfg.noise * torch.randn(x.shape, generator=gen), y


def _xor(cfg: DataConfig, gen: torch.Generator):
    x = torch.rand((cfg.n_samples, 2), generator=gen) * 2 - 1
    # Labels come from the clean points, so noise blurs the quadrant borders rather than relabelling.
    y = (x[:, 0] * x[:, 1] > 0).long()
    return x + cfg.noise * torch.randn(x.shape, generator=gen), y


def _class_counts(n: int, k: int) -> torch.Tensor:
    return torch.tensor([n // k + (1 if j < n % k else 0) for j in range(k)])


def _spiral(cfg: DataConfig, gen: torch.Generator):
    xs, ys = [], []
    for j, count in enumerate(_class_counts(cfg.n_samples, cfg.classes).tolist()):
        r = torch.linspace(0.0, 1.0, count)
        # Four radians per arm and angular noise (CS231n uses 0.2): arms stay apart up to noise ≈ 0.3.
        theta = torch.linspace(j * 4.0, (j + 1) * 4.0, count) + cfg.noise * torch.randn(count, generator=gen)
        xs.append(torch.stack([r * theta.sin(), r * theta.cos()], 1))
        ys.append(torch.full((count,), j, dtype=torch.long))
    return torch.cat(xs), torch.cat(ys)


def _blobs(cfg: DataConfig, gen: torch.Generator):
    centres = torch.rand((cfg.classes, cfg.features), generator=gen) * 20 - 10
    y = torch.repeat_interleave(torch.arange(cfg.classes), _class_counts(cfg.n_samples, cfg.classes))
    x = centres[y] + (1.0 + cfg.noise) * torch.randn((cfg.n_samples, cfg.features), generator=gen)
    return x, y


def _sine(cfg: DataConfig, gen: torch.Generator):
    # 0.1 rad per step: a default 20-value window sees about a third of a period.
    phase = torch.rand((), generator=gen) * 2 * math.pi
    t = phase + 0.1 * torch.arange(cfg.n_samples + cfg.seq_len, dtype=torch.float32)
    series = t.sin() + cfg.noise * torch.randn(t.shape, generator=gen)
    # (N, seq_len, 1): a sequence of one feature per step, ready for a recurrent model (an MLP flattens it).
    x = series.unfold(0, cfg.seq_len, 1)[: cfg.n_samples].unsqueeze(-1).contiguous()
    y = series[cfg.seq_len: cfg.seq_len + cfg.n_samples].unsqueeze(1)
    return x, y


_GENERATORS = {
    "line": _line, "moons": _moons, "circles": _circles, "xor": _xor,
    "spiral": _spiral, "blobs": _blobs, "sine": _sine,
}
