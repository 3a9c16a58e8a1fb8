"""Image augmentation on the device, a whole batch at a time: random left-right flips and padded random crops."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def random_flip(x: torch.Tensor) -> torch.Tensor:
    """Each image of an (N, C, H, W) batch flipped left-right with probability 1/2."""
    flip = torch.rand(len(x), device=x.device) < 0.5
    return torch.where(flip[:, None, None, None], x.flip(-1), x)


def random_crop(x: torch.Tensor, padding: int) -> torch.Tensor:
    """Each image zero-padded by `padding` per side, then cropped back to H×W at a random offset."""
    n, _, h, w = x.shape
    padded = F.pad(x, (padding, padding, padding, padding))
    dy = torch.randint(0, 2 * padding + 1, (n,), device=x.device)
    dx = torch.randint(0, 2 * padding + 1, (n,), device=x.device)
    rows = (dy[:, None] + torch.arange(h, device=x.device))[:, :, None]     # (N, H, 1)
    cols = (dx[:, None] + torch.arange(w, device=x.device))[:, None, :]     # (N, 1, W)
    batch = torch.arange(n, device=x.device)[:, None, None]
    # Advanced indexing gathers (N, H, W, C); move channels back in front.
    return padded.permute(0, 2, 3, 1)[batch, rows, cols].permute(0, 3, 1, 2).contiguous()


def augment(x: torch.Tensor, flip: bool, crop: int) -> torch.Tensor:
    """The configured augmentations for a training batch of images; other inputs pass through unchanged."""
    if x.dim() != 4:
        return x
    if crop:
        x = random_crop(x, crop)
    if flip:
        x = random_flip(x)
    return x
