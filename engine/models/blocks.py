"""Building blocks: activations, norms and the hidden Linear layers of an MLP (heads of CNNs and RNNs too)."""

from __future__ import annotations

import math
from collections import OrderedDict

from torch import nn

from torchtui.engine.config import ConvConfig, LayerConfig
from torchtui.engine.errors import ModelError
from torchtui.engine.models import ACTIVATIONS


def activation(layer: LayerConfig | ConvConfig) -> nn.Module | None:
    """The activation module a layer or conv block asks for (None for "none")."""
    if layer.activation not in ACTIVATIONS:
        raise ModelError(f"model: unknown activation '{layer.activation}'")
    name = ACTIVATIONS[layer.activation]
    if name is None:
        return None
    return nn.LeakyReLU(layer.negative_slope) if name == "LeakyReLU" else getattr(nn, name)()


def _norm(layer: LayerConfig) -> nn.Module | None:
    if layer.norm == "none":
        return None
    if layer.norm == "batch":
        return nn.BatchNorm1d(layer.units)
    if layer.norm == "layer":
        return nn.LayerNorm(layer.units)
    raise ModelError(f"model.layers: unknown norm '{layer.norm}'")


def _hidden_block(i: int, n_in: int, layer: LayerConfig) -> list[tuple[str, nn.Module]]:
    """fc{i}, then norm{i}, act{i} and drop{i} where the layer asks for them."""
    block: list[tuple[str, nn.Module]] = [(f"fc{i}", nn.Linear(n_in, layer.units))]
    norm, act = _norm(layer), activation(layer)
    if norm is not None:
        block.append((f"norm{i}", norm))
    if act is not None:
        block.append((f"act{i}", act))
    if layer.dropout > 0:
        block.append((f"drop{i}", nn.Dropout(layer.dropout)))
    return block


def mlp_layers(layers: list[LayerConfig], n_in: int, n_out: int) -> list[tuple[str, nn.Module]]:
    """Named modules of hidden layers fc1, act1, … then `head`: a linear model when `layers` is empty."""
    modules: list[tuple[str, nn.Module]] = []
    width = n_in
    for i, layer in enumerate(layers, start=1):
        modules += _hidden_block(i, width, layer)
        width = layer.units
    modules.append(("head", nn.Linear(width, n_out)))
    return modules


def build_mlp(cfg, shape: tuple[int, ...], n_out: int) -> nn.Module:
    """kind mlp: the hidden layers, then the head; images and sequences are flattened first."""
    flatten = [("flatten", nn.Flatten())] if len(shape) > 1 else []
    return nn.Sequential(OrderedDict(flatten + mlp_layers(cfg.layers, math.prod(shape), n_out)))
