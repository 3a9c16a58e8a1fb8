"""Model building: the network a ModelConfig describes, seeded, fine-tuned and checked; per-layer parameter groups."""

from __future__ import annotations

import math

import torch
from torch import nn

from torchtui.engine.config import ModelConfig
from torchtui.engine.errors import ModelError
from torchtui.engine.models import KINDS, builder
from torchtui.engine.models.init import init_weights
from torchtui.engine.models.tokens import TOKEN_KINDS, TokenInput


def output_size(task: str, n_classes: int, n_targets: int, loss: str) -> int:
    """Width of the head: 1 logit for binary + bce_with_logits, a logit per class otherwise, n_targets for regression.

    `loss` must already be resolved (see config.resolve_loss), never "auto".
    """
    if task == "regression":
        return n_targets
    if task == "tokens":  # a logit per vocabulary entry at every position
        return n_classes
    if task == "binary" and loss == "bce_with_logits":
        return 1
    return n_classes


def build_model(cfg: ModelConfig, input_shape: int | tuple[int, ...], n_outputs: int,
                tokens: TokenInput | None = None) -> nn.Module:
    """The network for one sample of `input_shape` and `n_outputs` outputs, built under a forked CPU RNG.

    Seeding with cfg.seed gives the same weights for the same seed, for every kind and init scheme
    (default included), and leaves the global RNG that shuffling and dropout draw from exactly as it was.
    `input_shape` may be an int (features of a flat row). `tokens` says the inputs are token ids (transformer
    and rnn kinds then put an embedding first).
    """
    shape = (input_shape,) if isinstance(input_shape, int) else tuple(input_shape)
    if math.prod(shape) < 1 or n_outputs < 1:
        raise ModelError(f"model: needs at least one input and one output, got {shape} -> {n_outputs}")
    count = estimate_parameters(cfg, shape, n_outputs, tokens)
    if count is not None and count > MAX_PARAMETERS:
        raise ModelError(f"model: about {count:,.0f} parameters, more than the {MAX_PARAMETERS:,} this tool will "
                         "allocate (fewer or narrower layers, or more pooling)")
    # devices=[]: modules are created on the CPU, and forking CUDA generators would initialise CUDA.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed)
        model = _build(cfg, shape, n_outputs, tokens)
        if cfg.init != "default":
            init_weights(model, cfg)
    return model


MAX_PARAMETERS = 2_000_000_000  # 8 GB of fp32 weights before any optimizer state: a typo, not a model


def estimate_parameters(cfg: ModelConfig, shape: tuple[int, ...], n_out: int,
                        tokens: TokenInput | None = None) -> float | None:
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
        from torchtui.engine.models.cnn import feature_shape

        total, channels = 0.0, shape[0]
        for block in cfg.conv:
            total += channels * block.channels * block.kernel ** 2 + 3 * block.channels
            channels = block.channels
        return total + head(math.prod(feature_shape(cfg.conv, shape)))
    if cfg.kind == "rnn":
        from torchtui.engine.models.rnn import recurrent_parameters

        embed = tokens.vocab_size * cfg.hidden_size if tokens is not None else 0
        width = cfg.hidden_size * (2 if cfg.bidirectional else 1)
        return embed + recurrent_parameters(cfg, shape, tokens) + head(width)
    if cfg.kind == "transformer":
        from torchtui.engine.models.transformer import transformer_parameters

        return transformer_parameters(cfg, shape, n_out, tokens)
    return None


def _build(cfg: ModelConfig, shape: tuple[int, ...], n_out: int, tokens: TokenInput | None) -> nn.Module:
    if cfg.kind not in KINDS:
        raise ModelError(f"model.kind: unknown '{cfg.kind}'")
    if cfg.kind in TOKEN_KINDS:
        return builder(cfg.kind)(cfg, shape, n_out, tokens=tokens)
    if tokens is not None and cfg.kind in ("mlp", "cnn"):
        raise ModelError(f"model.kind: {cfg.kind} reads numbers, but this data is token ids (use transformer or "
                         "rnn, which embed them first, or a custom module)")
    return builder(cfg.kind)(cfg, shape, n_out)


def unwrap(model: nn.Module) -> nn.Module:
    """The user's module inside the wrappers a run may add: torch.compile's and DistributedDataParallel's."""
    while True:
        if hasattr(model, "_orig_mod"):
            model = model._orig_mod
        elif isinstance(model, torch.nn.parallel.DistributedDataParallel):
            model = model.module
        else:
            return model


def unwrap_to_ddp(model: nn.Module) -> nn.Module | None:
    """The DistributedDataParallel wrapper inside torch.compile's, or None when the model has none."""
    while hasattr(model, "_orig_mod"):
        model = model._orig_mod
    return model if isinstance(model, torch.nn.parallel.DistributedDataParallel) else None


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
                  sample: torch.Tensor | None = None, tokens: TokenInput | None = None) -> tuple[nn.Module, list[str]]:
    """Build the model, then the fine-tuning steps (load weights, replace the head, freeze), then check that
    a batch of `sample` (two real samples, or zeros) comes out as (2, n_outputs), or (2, T, n_outputs) on
    next-token data. Returns the model and notes."""
    from torchtui.engine.models import finetune

    shape = (input_shape,) if isinstance(input_shape, int) else tuple(input_shape)
    model = build_model(cfg, shape, n_outputs, tokens)
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
    if sample is None:
        sample = torch.zeros(2, *shape, dtype=torch.long if tokens is not None else torch.float32)
    probe = sample if tokens is not None else sample.float()
    finetune.check_output(model, probe, n_outputs, cfg, per_token=tokens is not None and tokens.per_token)
    return model, notes
