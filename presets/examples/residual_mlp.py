"""An example custom module for torchtui: an MLP with residual blocks (preset `custom-module`).

torchtui builds it as `ResidualMLP(**model.kwargs)`, adding `in_features` and `num_classes` from the data
because the constructor asks for them by those names.
"""

from torch import nn


class ResidualBlock(nn.Module):
    """x + f(x): LayerNorm, Linear, GELU, Linear — the block keeps its width, so depth stays trainable."""

    def __init__(self, width: int):
        super().__init__()
        self.body = nn.Sequential(nn.LayerNorm(width), nn.Linear(width, width), nn.GELU(), nn.Linear(width, width))

    def forward(self, x):
        return x + self.body(x)


class ResidualMLP(nn.Module):
    def __init__(self, in_features: int, num_classes: int, width: int = 64, blocks: int = 3):
        super().__init__()
        self.stem = nn.Linear(in_features, width)
        self.blocks = nn.Sequential(*[ResidualBlock(width) for _ in range(blocks)])
        self.head = nn.Linear(width, num_classes)

    def forward(self, x):
        return self.head(self.blocks(self.stem(x)))
