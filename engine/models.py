"""Model building: the network a ModelConfig describes (MLP, CNN, RNN, custom, torchvision), seeded init,
fine-tuning steps, and per-layer parameter groups for statistics."""

from __future__ import annotations

import math
from collections import OrderedDict

import torch
from torch import nn

from .config import ConvConfig, LayerConfig, ModelConfig
from .errors import ModelError
from .summary import LayerRow, ModelSummary, format_summary, summarize  # noqa: F401 - re-exported

# Activations torch.nn.init has a gain for; GELU and SiLU have none, so ReLU's stands in for them.
_GAIN_NAMES = {nn.ReLU: "relu", nn.LeakyReLU: "leaky_relu", nn.Tanh: "tanh", nn.Sigmoid: "sigmoid"}
_ACTIVATIONS = {"relu": nn.ReLU, "gelu": nn.GELU, "silu": nn.SiLU, "tanh": nn.Tanh, "sigmoid": nn.Sigmoid}
WEIGHTED = (nn.Linear, nn.Conv1d, nn.Conv2d)


def output_size(task: str, n_classes: int, n_targets: int, loss: str) -> int:
    """Width of the head: 1 logit for binary + bce_with_logits, a logit per class otherwise, n_targets for regression.

    `loss` must already be resolved (see config.resolve_loss), never "auto".
    """
    if task == "regression":
        return n_targets
    if task == "binary" and loss == "bce_with_logits":
        return 1
    return n_classes


def activation(layer: LayerConfig | ConvConfig) -> nn.Module | None:
    """The activation module a layer or conv block asks for (None for "none")."""
    if layer.activation == "none":
        return None
    if layer.activation == "leaky_relu":
        return nn.LeakyReLU(layer.negative_slope)
    if layer.activation not in _ACTIVATIONS:
        raise ModelError(f"model: unknown activation '{layer.activation}'")
    return _ACTIVATIONS[layer.activation]()


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


def build_model(cfg: ModelConfig, input_shape: int | tuple[int, ...], n_outputs: int) -> nn.Module:
    """The network for one sample of `input_shape` and `n_outputs` outputs, built under a forked CPU RNG.

    Seeding with cfg.seed gives the same weights for the same seed, for every kind and init scheme
    (default included), and leaves the global RNG that shuffling and dropout draw from exactly as it was.
    `input_shape` may be an int (features of a flat row).
    """
    shape = (input_shape,) if isinstance(input_shape, int) else tuple(input_shape)
    if math.prod(shape) < 1 or n_outputs < 1:
        raise ModelError(f"model: needs at least one input and one output, got {shape} -> {n_outputs}")
    count = estimate_parameters(cfg, shape, n_outputs)
    if count is not None and count > MAX_PARAMETERS:
        raise ModelError(f"model: about {count:,.0f} parameters, more than the {MAX_PARAMETERS:,} this tool will "
                         "allocate (fewer or narrower layers, or more pooling)")
    # devices=[]: modules are created on the CPU, and forking CUDA generators would initialise CUDA.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed)
        model = _build(cfg, shape, n_outputs)
        if cfg.init != "default":
            init_weights(model, cfg)
    return model


MAX_PARAMETERS = 2_000_000_000  # 8 GB of fp32 weights before any optimizer state: a typo, not a model


def estimate_parameters(cfg: ModelConfig, shape: tuple[int, ...], n_out: int) -> float | None:
    """Parameters the builders would allocate, computed without allocating (None for custom/torchvision)."""
    def head(width: int) -> float:
        total, n_in = 0.0, width
        for layer in cfg.layers:
            total += n_in * layer.units + layer.units * (3 if layer.norm != "none" else 1)
            n_in = layer.units
        return total + n_in * n_out + n_out

    if cfg.kind == "mlp":
        return head(math.prod(shape))
    if cfg.kind == "cnn" and len(shape) == 3:
        from .convnet import feature_shape

        total, channels = 0.0, shape[0]
        for block in cfg.conv:
            total += channels * block.channels * block.kernel ** 2 + 3 * block.channels
            channels = block.channels
        return total + head(math.prod(feature_shape(cfg.conv, shape)))
    if cfg.kind == "rnn":
        from .recurrent import recurrent_parameters

        return recurrent_parameters(cfg, shape) + head(cfg.hidden_size * (2 if cfg.bidirectional else 1))
    return None


def _build(cfg: ModelConfig, shape: tuple[int, ...], n_out: int) -> nn.Module:
    if cfg.kind == "mlp":
        flatten = [("flatten", nn.Flatten())] if len(shape) > 1 else []
        return nn.Sequential(OrderedDict(flatten + mlp_layers(cfg.layers, math.prod(shape), n_out)))
    if cfg.kind == "cnn":
        from .convnet import build_cnn

        return build_cnn(cfg, shape, n_out)
    if cfg.kind == "rnn":
        from .recurrent import RecurrentNet

        return RecurrentNet(cfg, shape, n_out)
    if cfg.kind in ("custom", "torchvision"):
        from . import usermodels

        build = usermodels.build_custom if cfg.kind == "custom" else usermodels.build_torchvision
        return build(cfg, shape, n_out)
    raise ModelError(f"model.kind: unknown '{cfg.kind}'")


def _nonlinearity(act: nn.Module | None) -> tuple[str, float]:
    """torch.nn.init's name for the activation after a layer and its parameter (leaky slope)."""
    if act is None:
        return "linear", 0.0
    if isinstance(act, nn.LeakyReLU):
        return "leaky_relu", act.negative_slope
    return _GAIN_NAMES.get(type(act), "relu"), 0.0


def _activation_after(siblings: list[nn.Module], i: int) -> nn.Module | None:
    """The activation that follows sibling i before the next weighted layer (through norms and pools)."""
    for module in siblings[i + 1:]:
        if isinstance(module, WEIGHTED):
            return None
        if isinstance(module, (nn.ReLU, nn.LeakyReLU, nn.Tanh, nn.Sigmoid, nn.GELU, nn.SiLU)):
            return module
    return None


def init_weights(model: nn.Module, cfg: ModelConfig) -> None:
    """Apply cfg.init to every Linear and Conv weight and zero its bias (recurrent layers keep torch's init).

    The gain follows the activation after each layer in its Sequential; a head feeds the loss (linear).
    Must run inside build_model's seeded RNG.
    """
    done: set[int] = set()
    for container in model.modules():
        children = list(container.children())
        for i, module in enumerate(children):
            if isinstance(module, WEIGHTED) and isinstance(container, nn.Sequential):
                _init_one(module, _activation_after(children, i), cfg)
                done.add(id(module))
    for module in model.modules():  # weighted layers outside any Sequential: no known activation
        if isinstance(module, WEIGHTED) and id(module) not in done:
            _init_one(module, None, cfg)


def _init_one(module: nn.Module, act: nn.Module | None, cfg: ModelConfig) -> None:
    nonlinearity, slope = _nonlinearity(act)
    w = module.weight
    if cfg.init in ("xavier_uniform", "xavier_normal"):
        # Glorot's bound scaled by the activation's gain, as torch's docs recommend.
        gain = nn.init.calculate_gain(nonlinearity, slope)
        fill = nn.init.xavier_uniform_ if cfg.init == "xavier_uniform" else nn.init.xavier_normal_
        fill(w, gain=gain)
    elif cfg.init in ("kaiming_uniform", "kaiming_normal"):
        fill = nn.init.kaiming_uniform_ if cfg.init == "kaiming_uniform" else nn.init.kaiming_normal_
        fill(w, a=slope, nonlinearity=nonlinearity)
    elif cfg.init == "uniform":
        nn.init.uniform_(w, cfg.init_a, cfg.init_b)
    elif cfg.init == "normal":
        nn.init.normal_(w, 0.0, cfg.init_std)
    else:
        raise ModelError(f"model.init: unknown '{cfg.init}'")
    if module.bias is not None:
        nn.init.zeros_(module.bias)


def activation_modules(model: nn.Module) -> dict[str, nn.Module]:
    """ReLU and LeakyReLU layers by name: the ones whose units can die (for dead-ReLU statistics)."""
    return {name: m for name, m in model.named_modules() if isinstance(m, (nn.ReLU, nn.LeakyReLU))}


def param_groups_by_layer(model: nn.Module) -> tuple[list[str], list[list[nn.Parameter]]]:
    """Layers that own trainable parameters, in order, each with its parameters (for per-layer statistics).

    E.g. (["fc1", "norm1", "fc2", "head"], [[w, b], [w, b], [w, b], [w, b]]); frozen parameters are left
    out, and a layer whose parameters are all frozen is left out entirely.
    """
    names, groups = [], []
    for name, module in model.named_modules():
        params = [p for p in module.parameters(recurse=False) if p.requires_grad]
        if params:
            names.append(name)
            groups.append(params)
    return names, groups


def prepare_model(cfg: ModelConfig, input_shape: int | tuple[int, ...], n_outputs: int,
                  sample: torch.Tensor | None = None) -> tuple[nn.Module, list[str]]:
    """Build the model, then the fine-tuning steps (load weights, replace the head, freeze), then check that
    a batch of `sample` (two real samples, or zeros) comes out as (2, n_outputs). Returns the model and notes."""
    from . import finetune

    shape = (input_shape,) if isinstance(input_shape, int) else tuple(input_shape)
    model = build_model(cfg, shape, n_outputs)
    notes: list[str] = []
    if cfg.pretrained:
        notes += finetune.load_pretrained(model, cfg)
    if cfg.replace_head:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(cfg.seed + 1)
            finetune.replace_head(model, n_outputs)
    frozen = finetune.freeze(model, cfg.freeze, cfg.freeze_first)
    if frozen:
        count = sum(p.numel() for n, p in model.named_parameters() if n in set(frozen))
        notes.append(f"model.freeze: {len(frozen)} tensors frozen ({count:,} parameters): {', '.join(frozen[:6])}"
                     + (" …" if len(frozen) > 6 else ""))
    probe = sample if sample is not None else torch.zeros(2, *shape)
    finetune.check_output(model, probe.float(), n_outputs, cfg)
    return model, notes
