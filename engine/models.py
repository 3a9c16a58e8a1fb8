"""Model building: the MLP a ModelConfig describes, seeded weight init, per-layer groups and a summary table."""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import asdict, dataclass

import torch
from torch import nn

from .config import LayerConfig, ModelConfig

# Activations torch.nn.init has a gain for; GELU and SiLU have none, so ReLU's stands in for them.
_GAIN_NAMES = {nn.ReLU: "relu", nn.LeakyReLU: "leaky_relu", nn.Tanh: "tanh", nn.Sigmoid: "sigmoid"}


def output_size(task: str, n_classes: int, n_targets: int, loss: str) -> int:
    """Width of the head: 1 logit for binary + bce_with_logits, a logit per class otherwise, n_targets for regression.

    `loss` must already be resolved (see config.resolve_loss), never "auto".
    """
    if task == "regression":
        return n_targets
    if task == "binary" and loss == "bce_with_logits":
        return 1
    return n_classes


def _activation(layer: LayerConfig) -> nn.Module | None:
    if layer.activation == "none":
        return None
    if layer.activation == "leaky_relu":
        return nn.LeakyReLU(layer.negative_slope)
    kinds = {"relu": nn.ReLU, "gelu": nn.GELU, "silu": nn.SiLU, "tanh": nn.Tanh, "sigmoid": nn.Sigmoid}
    if layer.activation not in kinds:
        raise ValueError(f"model.layers: unknown activation '{layer.activation}'")
    return kinds[layer.activation]()


def _norm(layer: LayerConfig) -> nn.Module | None:
    if layer.norm == "none":
        return None
    if layer.norm == "batch":
        return nn.BatchNorm1d(layer.units)
    if layer.norm == "layer":
        return nn.LayerNorm(layer.units)
    raise ValueError(f"model.layers: unknown norm '{layer.norm}'")


def _hidden_block(i: int, n_in: int, layer: LayerConfig) -> list[tuple[str, nn.Module]]:
    """fc{i}, then norm{i}, act{i} and drop{i} where the layer asks for them."""
    block: list[tuple[str, nn.Module]] = [(f"fc{i}", nn.Linear(n_in, layer.units))]
    norm, act = _norm(layer), _activation(layer)
    if norm is not None:
        block.append((f"norm{i}", norm))
    if act is not None:
        block.append((f"act{i}", act))
    if layer.dropout > 0:
        block.append((f"drop{i}", nn.Dropout(layer.dropout)))
    return block


def build_model(cfg: ModelConfig, n_inputs: int, n_outputs: int) -> nn.Module:
    """An nn.Sequential named fc1, norm1, act1, drop1, …, head; no hidden layers gives a linear model.

    Built under a forked CPU RNG seeded with cfg.seed, so the same seed gives the same weights for
    every init scheme (default included) and the global RNG that shuffling and dropout draw from is
    left exactly as it was.
    """
    if cfg.kind != "mlp":
        raise ValueError(f"model.kind: unknown '{cfg.kind}' (choose mlp)")
    if n_inputs < 1 or n_outputs < 1:
        raise ValueError(f"model: needs at least one input and one output, got {n_inputs} -> {n_outputs}")
    # devices=[]: modules are created on the CPU, and forking CUDA generators would initialise CUDA.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed)
        layers: list[tuple[str, nn.Module]] = []
        width = n_inputs
        for i, layer in enumerate(cfg.layers, start=1):
            layers += _hidden_block(i, width, layer)
            width = layer.units
        layers.append(("head", nn.Linear(width, n_outputs)))
        model = nn.Sequential(OrderedDict(layers))
        if cfg.init != "default":
            _init_weights(model, cfg)
    return model


def _nonlinearity(act: nn.Module | None) -> tuple[str, float]:
    """torch.nn.init's name for the activation after a Linear and its parameter (leaky slope)."""
    if act is None:
        return "linear", 0.0
    if isinstance(act, nn.LeakyReLU):
        return "leaky_relu", act.negative_slope
    return _GAIN_NAMES.get(type(act), "relu"), 0.0


def _init_weights(model: nn.Sequential, cfg: ModelConfig) -> None:
    """Apply cfg.init to every Linear weight and zero its bias; must run inside build_model's seeded RNG."""
    for name, module in model.named_children():
        if not isinstance(module, nn.Linear):
            continue
        # fc{i} feeds act{i} (through norm{i} if any); the head feeds the loss, i.e. is linear.
        act = model._modules.get("act" + name[2:]) if name.startswith("fc") else None
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
            raise ValueError(f"model.init: unknown '{cfg.init}'")
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


@dataclass
class LayerRow:
    """One leaf layer of a summary; output_shape has -1 for the batch dimension."""

    name: str
    type: str
    output_shape: list[int]
    params: int
    trainable: int


@dataclass
class ModelSummary:
    """Per-layer rows and parameter totals; shapes use -1 for the batch dimension."""

    rows: list[LayerRow]
    total: int
    trainable: int
    input_shape: list[int]

    def to_dict(self) -> dict:
        """Plain lists, ints and strings only, safe for events and JSON."""
        return asdict(self)


def _output_shapes(model: nn.Module, leaves: list[tuple[str, nn.Module]], n_inputs: int) -> dict[str, list[int]]:
    """Each leaf's output shape from one dummy forward pass, batch dimension replaced by -1."""
    shapes: dict[str, list[int]] = {}

    def record(name):
        def hook(_module, _inputs, output):
            if isinstance(output, torch.Tensor):
                shapes[name] = [-1, *output.shape[1:]]
        return hook

    hooks = [m.register_forward_hook(record(n)) for n, m in leaves]
    first = next(model.parameters(), None)
    device = first.device if first is not None else torch.device("cpu")
    dtype = first.dtype if first is not None and first.is_floating_point() else torch.float32
    was_training = model.training
    # eval: BatchNorm must not fold the dummy batch into its running statistics, and dropout stays off.
    model.eval()
    try:
        with torch.no_grad():
            # a batch of 2, because BatchNorm1d refuses a batch of one in training mode
            model(torch.zeros(2, n_inputs, device=device, dtype=dtype))
    finally:
        for h in hooks:
            h.remove()
        model.train(was_training)
    return shapes


def summarize(model: nn.Module, n_inputs: int) -> ModelSummary:
    """One row per leaf module with its output shape (batch dimension as -1) and parameter counts."""
    leaves = [(n, m) for n, m in model.named_modules() if n and next(m.children(), None) is None]
    shapes = _output_shapes(model, leaves, n_inputs)
    rows = []
    for name, module in leaves:
        params = list(module.parameters(recurse=False))
        rows.append(LayerRow(
            name=name, type=type(module).__name__, output_shape=shapes.get(name, []),
            params=sum(p.numel() for p in params), trainable=sum(p.numel() for p in params if p.requires_grad),
        ))
    total = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return ModelSummary(rows=rows, total=total, trainable=trainable, input_shape=[-1, n_inputs])


def _shape_text(shape: list[int]) -> str:
    """(N, 128): the batch dimension (-1) written as N."""
    if not shape:
        return "?"
    return "(" + ", ".join("N" if i == 0 and d == -1 else str(d) for i, d in enumerate(shape)) + ")"


def format_summary(summary: ModelSummary) -> str:
    """A plain-text table like Keras' model.summary() (batch dimension shown as N), then the totals."""
    header = ("Layer", "Type", "Output shape", "Params", "Trainable")
    body = [(r.name, r.type, _shape_text(r.output_shape), f"{r.params:,}", f"{r.trainable:,}")
            for r in summary.rows]
    widths = [max(len(row[i]) for row in (header, *body)) for i in range(len(header))]
    numeric = (False, False, False, True, True)

    def line(row) -> str:
        cells = (c.rjust(w) if num else c.ljust(w) for c, w, num in zip(row, widths, numeric))
        return "  ".join(cells).rstrip()

    rule = "-" * (sum(widths) + 2 * (len(widths) - 1))
    return "\n".join([
        f"Input shape: {_shape_text(summary.input_shape)}",
        line(header), rule, *map(line, body), rule,
        f"Total params: {summary.total:,}",
        f"Trainable params: {summary.trainable:,}",
        f"Non-trainable params: {summary.total - summary.trainable:,}",
    ])
