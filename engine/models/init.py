"""Weight initialisation schemes (xavier, kaiming, uniform, normal) with the gain of the activation after each layer."""

from __future__ import annotations

from torch import nn

from torchtui.engine.config import ModelConfig
from torchtui.engine.errors import ModelError
from torchtui.engine.models.summary import LayerRow, ModelSummary, format_summary, summarize  # noqa: F401 - re-exported

# Activations torch.nn.init has a gain for; GELU and SiLU have none, so ReLU's stands in for them.
_GAIN_NAMES = {nn.ReLU: "relu", nn.LeakyReLU: "leaky_relu", nn.Tanh: "tanh", nn.Sigmoid: "sigmoid"}
WEIGHTED = (nn.Linear, nn.Conv1d, nn.Conv2d)


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
