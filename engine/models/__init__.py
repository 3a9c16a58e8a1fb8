"""Model kinds by name, and the choices their layers offer: the registries the config's choices come from.

The tables import no torch, so config validation and the Model pane read them without loading it;
`builder(kind)` imports the kind's module when a model is built. A new kind is a module here with a
builder `(ModelConfig, input shape, outputs) -> nn.Module` and a line in KINDS.
"""

from __future__ import annotations

import importlib

KINDS = {  # name -> (module in this package, its builder)
    "mlp": ("blocks", "build_mlp"),
    "cnn": ("cnn", "build_cnn"),
    "rnn": ("rnn", "RecurrentNet"),
    "transformer": ("transformer", "build_transformer"),
    "custom": ("custom", "build_custom"),
    "torchvision": ("custom", "build_torchvision"),
}
# name -> the torch.nn class (None: nothing); leaky_relu takes the layer's negative_slope
ACTIVATIONS = {"relu": "ReLU", "leaky_relu": "LeakyReLU", "gelu": "GELU", "silu": "SiLU", "tanh": "Tanh",
               "sigmoid": "Sigmoid", "none": None}
NORMS = ("none", "batch", "layer")
POOLS = {"none": None, "max": "MaxPool2d", "avg": "AvgPool2d"}
CELLS = {"rnn": "RNN", "lstm": "LSTM", "gru": "GRU"}
POOLINGS = ("last", "mean")  # how an rnn summarises its sequence
INITS = ("default", "xavier_uniform", "xavier_normal", "kaiming_uniform", "kaiming_normal", "uniform", "normal")


def builder(kind: str):
    module, name = KINDS[kind]
    return getattr(importlib.import_module(f"{__name__}.{module}"), name)
