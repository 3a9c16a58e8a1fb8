"""The Model pane's configuration: the network's kind and settings, hidden layers and conv blocks, with
validation (composed into ExperimentConfig by engine/config.py, which re-exports these)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, ClassVar

from torchtui.engine import models
from torchtui.engine.data import sources as data_sources

MODEL_KINDS, CELLS, POOLS = tuple(models.KINDS), tuple(models.CELLS), tuple(models.POOLS)
ACTIVATIONS, POOLINGS, NORMS, INITS = tuple(models.ACTIVATIONS), models.POOLINGS, models.NORMS, models.INITS


def fraction(name: str, value, upper: float = 1.0) -> Iterator[tuple[str, str]]:
    if value is not None and not 0 <= value < upper:
        yield name, f"must be at least 0 and below {upper:g}, got {value!r}"


@dataclass
class LayerConfig:
    CHOICES: ClassVar = {"activation": ACTIVATIONS, "norm": NORMS}
    POSITIVE: ClassVar = ("units",)
    NON_NEGATIVE: ClassVar = ("negative_slope",)
    MAXIMUM: ClassVar = {"units": 1_000_000}

    units: int = 64
    """Width of this hidden layer."""
    activation: str = "relu"
    """The activation after this layer (none = linear)."""
    negative_slope: float = 0.01
    """leaky_relu: slope for negative inputs."""
    dropout: float = 0.0
    """Probability of zeroing each unit during training (0 = off)."""
    norm: str = "none"
    """Normalisation after the linear layer: none, batch or layer."""

    @classmethod
    def from_shorthand(cls, data: Any) -> Any:
        """A bare number is a layer of that many units with the default activation."""
        return {"units": data} if isinstance(data, (int, float)) and not isinstance(data, bool) else data

    def check(self) -> Iterator[tuple[str, str]]:
        yield from fraction("dropout", self.dropout)


@dataclass
class ConvConfig:
    CHOICES: ClassVar = {"activation": ACTIVATIONS, "norm": NORMS, "pool": POOLS}
    POSITIVE: ClassVar = ("channels", "kernel", "stride", "pool_size")
    NON_NEGATIVE: ClassVar = ("padding", "negative_slope")
    MAXIMUM: ClassVar = {"channels": 100_000, "kernel": 1024, "stride": 1024, "padding": 1024, "pool_size": 1024}

    channels: int = 32
    """Output channels of this convolution."""
    kernel: int = 3
    """Kernel size (square)."""
    stride: int = 1
    """Step between kernel positions."""
    padding: int = 1
    """Zero padding per side (kernel // 2 keeps the size at stride 1)."""
    activation: str = "relu"
    """The activation after this layer (none = linear)."""
    negative_slope: float = 0.01
    """leaky_relu: slope for negative inputs."""
    norm: str = "none"
    """Normalisation after the convolution: none, batch, or layer (over channels and pixels)."""
    pool: str = "max"
    """Pooling after the activation: none, max or avg."""
    pool_size: int = 2
    """Pooling window and stride."""
    dropout: float = 0.0
    """Probability of zeroing whole channels during training (0 = off)."""

    @classmethod
    def from_shorthand(cls, data: Any) -> Any:
        """A bare number is a block of that many channels with the defaults."""
        return {"channels": data} if isinstance(data, (int, float)) and not isinstance(data, bool) else data

    def check(self) -> Iterator[tuple[str, str]]:
        yield from fraction("dropout", self.dropout)


@dataclass
class ModelConfig:
    CHOICES: ClassVar = {"kind": MODEL_KINDS, "init": INITS, "cell": CELLS, "pooling": POOLINGS}
    POSITIVE: ClassVar = ("init_std", "hidden_size", "num_layers", "n_layer", "n_head", "d_model")
    NON_NEGATIVE: ClassVar = ("freeze_first", "d_ff")
    MAXIMUM: ClassVar = {"layers": 1000, "conv": 1000, "hidden_size": 1_000_000, "num_layers": 1000,
                         "freeze_first": 100_000, "freeze": 1000, "n_layer": 1000, "n_head": 1024,
                         "d_model": 1_000_000, "d_ff": 10_000_000}

    kind: str = "mlp"
    """mlp, cnn (conv blocks, then the layers), rnn (a recurrent layer, then the layers), transformer, custom or
    torchvision."""
    layers: list[LayerConfig] = field(default_factory=lambda: [LayerConfig(), LayerConfig()])
    """Hidden layers in order (for cnn and rnn: the head after the features); a number is shorthand for
    {units: N}. Empty = a linear model."""
    conv: list[ConvConfig] = field(default_factory=lambda: [ConvConfig(32), ConvConfig(64)])
    """cnn: convolution blocks in order; a number is shorthand for {channels: N}."""
    cell: str = "lstm"
    """rnn: the recurrent cell."""
    hidden_size: int = 64
    """rnn: features in the hidden state."""
    num_layers: int = 1
    """rnn: stacked recurrent layers."""
    bidirectional: bool = False
    """rnn: read the sequence both ways."""
    rnn_dropout: float = 0.0
    """rnn: dropout between stacked recurrent layers (needs num_layers >= 2)."""
    pooling: str = "last"
    """rnn: summarise the sequence by its last step or the mean over steps."""
    n_layer: int = 4
    """transformer: blocks (pre-norm self-attention + MLP)."""
    n_head: int = 4
    """transformer: attention heads (d_model must be a multiple)."""
    d_model: int = 128
    """transformer: width of the token embeddings and of every block."""
    d_ff: int = 0
    """transformer: width of each block's MLP (0 = 4 × d_model)."""
    dropout: float = 0.0
    """transformer: dropout on embeddings, attention and residual outputs (0 = off)."""
    tie_embeddings: bool = True
    """transformer on next-token data: the output layer shares the token embedding's weights."""
    module: str = ""
    """custom: path/to/model.py:ClassName (relative paths in a preset are relative to it)."""
    arch: str = ""
    """torchvision: a model name such as resnet18 (weights only from model.pretrained, never downloaded)."""
    kwargs: dict[str, Any] = field(default_factory=dict)
    """custom, torchvision: keyword arguments for the constructor."""
    pretrained: str = ""
    """A state_dict file (or a torchtui checkpoint) to start from; loaded weights-only."""
    strict: bool = True
    """pretrained: every key and shape must match (off: load what matches, list the rest)."""
    replace_head: bool = False
    """Give the model a new, freshly initialised last Linear layer sized for this data (fine-tuning)."""
    freeze: list[str] = field(default_factory=list)
    """Parameter name patterns to freeze, e.g. conv1.* or fc1.weight (glob syntax)."""
    freeze_first: int = 0
    """Freeze the first N layers that have parameters."""
    init: str = "default"
    """Weight init of Linear and Conv layers (default = torch's own)."""
    init_a: float = -0.1
    """uniform init: lower bound."""
    init_b: float = 0.1
    """uniform init: upper bound."""
    init_std: float = 0.02
    """normal init: standard deviation."""
    seed: int = 0
    """Seed for weight initialisation."""

    def check(self) -> Iterator[tuple[str, str]]:
        if self.init == "uniform" and self.init_b <= self.init_a:
            yield "init_b", f"must be greater than init_a ({self.init_a!r}), got {self.init_b!r}"
        if self.kind == "cnn" and not self.conv:
            yield "conv", "a cnn needs at least one conv block (e.g. conv: [32, 64]), or use kind mlp"
        if self.kind == "custom" and not data_sources.is_code_ref(self.module):
            yield "module", f"expected path/to/model.py:ClassName, got '{self.module}'"
        if self.kind == "torchvision" and not self.arch.strip():
            yield "arch", "name a torchvision model, e.g. resnet18"
        yield from fraction("rnn_dropout", self.rnn_dropout)
        yield from fraction("dropout", self.dropout)
        if self.kind == "transformer" and self.d_model % self.n_head:
            yield "d_model", f"must be a multiple of n_head ({self.n_head}), got {self.d_model}"
        if self.rnn_dropout and self.num_layers < 2:
            yield "rnn_dropout", "applies between stacked layers: set num_layers to 2 or more, or rnn_dropout to 0"
