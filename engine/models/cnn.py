"""The CNN builder: conv blocks (conv, norm, activation, pool, dropout), then flatten and an MLP head."""

from __future__ import annotations

import math
from collections import OrderedDict

from torch import nn

from torchtui.engine.config import ConvConfig, ModelConfig
from torchtui.engine.errors import ModelError
from torchtui.engine.models import POOLS
from torchtui.engine.models.blocks import activation, mlp_layers


def _conv_block(i: int, c_in: int, block: ConvConfig) -> list[tuple[str, nn.Module]]:
    """conv{i}, then conv{i}_norm, _act, _pool and _drop where the block asks for them."""
    name = f"conv{i}"
    modules: list[tuple[str, nn.Module]] = [
        (name, nn.Conv2d(c_in, block.channels, block.kernel, stride=block.stride, padding=block.padding))]
    if block.norm == "batch":
        modules.append((f"{name}_norm", nn.BatchNorm2d(block.channels)))
    elif block.norm == "layer":  # one group = LayerNorm over channels and pixels, for any image size
        modules.append((f"{name}_norm", nn.GroupNorm(1, block.channels)))
    act = activation(block)
    if act is not None:
        modules.append((f"{name}_act", act))
    if block.pool != "none":
        pool = getattr(nn, POOLS[block.pool])
        modules.append((f"{name}_pool", pool(block.pool_size)))
    if block.dropout > 0:
        modules.append((f"{name}_drop", nn.Dropout2d(block.dropout)))
    return modules


def _out_size(size: int, kernel: int, stride: int, padding: int) -> int:
    return (size + 2 * padding - kernel) // stride + 1


def feature_shape(blocks: list[ConvConfig], shape: tuple[int, int, int]) -> tuple[int, int, int]:
    """(C, H, W) after every block; a block that would shrink the image below 1×1 is a ModelError naming it."""
    c, h, w = shape
    for i, block in enumerate(blocks):
        h, w = (_out_size(s, block.kernel, block.stride, block.padding) for s in (h, w))
        if min(h, w) >= 1 and block.pool != "none":
            h, w = h // block.pool_size, w // block.pool_size
        if min(h, w) < 1:
            raise ModelError(f"model.conv[{i}]: the image ({shape[1]}×{shape[2]}) shrinks to nothing at this block "
                             f"(kernel {block.kernel}, stride {block.stride}, padding {block.padding}, "
                             f"pool {block.pool} {block.pool_size}): remove a block or a pool, or pad more")
        c = block.channels
    return c, h, w


def build_cnn(cfg: ModelConfig, shape: tuple[int, ...], n_out: int) -> nn.Sequential:
    """Conv blocks for (C, H, W) images, then flatten, the hidden `layers` and the head."""
    if len(shape) != 3:
        what = f"{shape[0]} features per sample" if len(shape) == 1 else f"samples of shape {tuple(shape)}"
        raise ModelError(f"model.kind: cnn needs images (channels × height × width), but the data gives {what} "
                         "(use mlp or rnn, or an image source)")
    features = feature_shape(cfg.conv, shape)
    modules: list[tuple[str, nn.Module]] = []
    channels = shape[0]
    for i, block in enumerate(cfg.conv, start=1):
        modules += _conv_block(i, channels, block)
        channels = block.channels
    modules.append(("flatten", nn.Flatten()))
    modules += mlp_layers(cfg.layers, math.prod(features), n_out)
    return nn.Sequential(OrderedDict(modules))

