"""The model section of an exported script: the same modules, names and init as engine/models/ builds.

Modules are created in the engine's order under the model seed, so default init draws the same weights,
and the layer names match: the saved state_dict loads into torchtui's model and back.
"""

from __future__ import annotations

import inspect
import math
from pathlib import Path

from torchtui.engine.export.parts import Part, fill, unsupported
from torchtui.engine.models import ACTIVATIONS, CELLS, POOLS

GAIN_NAMES = {"relu": "relu", "leaky_relu": "leaky_relu", "tanh": "tanh", "sigmoid": "sigmoid",
              "gelu": "relu", "silu": "relu"}  # torch.nn.init has no gain for GELU or SiLU: ReLU's stands in


def model_part(cfg, input_shape: tuple[int, ...], n_out: int) -> Part:
    """Build `model` under the model seed (apart from the training RNG), init it, move it to the device."""
    check_model(cfg)
    settings = [("model_seed", cfg.seed, "model.seed: weight init")]
    imports = {"from torch import nn"}
    if cfg.kind == "custom":
        body, init = _custom(cfg, input_shape, n_out), ""
        title = f"model: {cfg.module.rpartition(':')[2]} from {Path(cfg.module.rpartition(':')[0]).name}"
    else:
        imports.add("from collections import OrderedDict")
        prefix, layers, before = _layers(cfg, input_shape, n_out)
        body = before + f"model = {_sequential(layers, 4) if cfg.kind != 'rnn' else 'RecurrentNet()'}\n"
        init = _init(cfg, prefix, layers)
        title = {"mlp": "model: an MLP", "cnn": "model: conv blocks, then an MLP head",
                 "rnn": f"model: {'a' if cfg.cell == 'gru' else 'an'} {CELLS[cfg.cell]} over the sequence, "
                        "then an MLP head"}[cfg.kind]
    code = ("# Weights from the model seed, drawn apart from the training RNG that dropout uses, as in the run.\n"
            "with torch.random.fork_rng(devices=[]):\n    torch.manual_seed(model_seed)\n"
            + _indent(body + init) + "model = model.to(device)\n")
    if cfg.kind == "rnn":
        code = _recurrent_class(cfg, input_shape, n_out) + "\n\n" + code
    return Part(title, code, settings, imports, {"load_from_file"} if cfg.kind == "custom" else set())


def check_model(cfg) -> None:
    if cfg.kind not in ("mlp", "cnn", "rnn", "custom"):
        raise unsupported("model.kind", cfg.kind, "export builds mlp, cnn, rnn and custom models")
    for name, off in (("pretrained", ""), ("replace_head", False), ("freeze", []), ("freeze_first", 0)):
        if getattr(cfg, name) != off:
            raise unsupported(f"model.{name}", getattr(cfg, name), "export trains from a fresh init; "
                              "fine-tune with torchtui, or load the weights into the exported model yourself")
    if cfg.kind == "custom" and cfg.init != "default":
        raise unsupported("model.init", cfg.init,
                          "a custom module keeps its own init in export: set model.init: default")


def _indent(text: str) -> str:
    return "".join(f"    {line}" if line.strip() else line for line in text.splitlines(True))


def _activation(layer) -> tuple[str, tuple[str, float]] | None:
    """(module expression, (gain name, slope)) for a layer's activation, or None."""
    name = ACTIVATIONS[layer.activation]
    if name is None:
        return None
    if name == "LeakyReLU":
        return f"nn.LeakyReLU({layer.negative_slope!r})", ("leaky_relu", layer.negative_slope)
    return f"nn.{name}()", (GAIN_NAMES[layer.activation], 0.0)


def _hidden(layers, n_in: int, n_out: int) -> list[tuple[str, str, object]]:
    """(name, module expression, gain of the activation that follows or None / "weighted") per module."""
    out: list[tuple[str, str, object]] = []
    width = n_in
    for i, layer in enumerate(layers, start=1):
        out.append((f"fc{i}", f"nn.Linear({width}, {layer.units})", "weighted"))
        if layer.norm != "none":
            out.append((f"norm{i}", f"nn.{'BatchNorm1d' if layer.norm == 'batch' else 'LayerNorm'}({layer.units})",
                        None))
        act = _activation(layer)
        if act is not None:
            out.append((f"act{i}", act[0], act[1]))
        if layer.dropout > 0:
            out.append((f"drop{i}", f"nn.Dropout({layer.dropout!r})", None))
        width = layer.units
    out.append(("head", f"nn.Linear({width}, {n_out})", "weighted"))
    return out


def _conv(blocks, channels: int) -> list[tuple[str, str, object]]:
    out: list[tuple[str, str, object]] = []
    for i, block in enumerate(blocks, start=1):
        name = f"conv{i}"
        args = [str(channels), str(block.channels), str(block.kernel)]
        args += [f"stride={block.stride}"] if block.stride != 1 else []
        args += [f"padding={block.padding}"] if block.padding else []
        out.append((name, f"nn.Conv2d({', '.join(args)})", "weighted"))
        if block.norm == "batch":
            out.append((f"{name}_norm", f"nn.BatchNorm2d({block.channels})", None))
        elif block.norm == "layer":  # one group: a LayerNorm over channels and pixels
            out.append((f"{name}_norm", f"nn.GroupNorm(1, {block.channels})", None))
        act = _activation(block)
        if act is not None:
            out.append((f"{name}_act", act[0], act[1]))
        if block.pool != "none":
            out.append((f"{name}_pool", f"nn.{POOLS[block.pool]}({block.pool_size})", None))
        if block.dropout > 0:
            out.append((f"{name}_drop", f"nn.Dropout2d({block.dropout!r})", None))
        channels = block.channels
    return out


def _layers(cfg, shape: tuple[int, ...], n_out: int) -> tuple[str, list, str]:
    """(attribute path of the Sequential, its modules, code before it) for mlp, cnn and rnn."""
    if cfg.kind == "mlp":
        flatten = [("flatten", "nn.Flatten()", None)] if len(shape) > 1 else []
        return "model", flatten + _hidden(cfg.layers, math.prod(shape), n_out), ""
    if cfg.kind == "cnn":
        from torchtui.engine.errors import ModelError
        from torchtui.engine.models.cnn import feature_shape
        from torchtui.engine.schema import ConfigError

        if len(shape) != 3:
            raise ConfigError(["model.kind: cnn needs images (channels × height × width), "
                               f"got samples of shape {shape}"])
        try:
            features = feature_shape(cfg.conv, shape)
        except ModelError as err:
            raise ConfigError([str(err)]) from None
        modules = _conv(cfg.conv, shape[0]) + [("flatten", "nn.Flatten()", None)]
        return "model", modules + _hidden(cfg.layers, math.prod(features), n_out), ""
    width = cfg.hidden_size * (2 if cfg.bidirectional else 1)
    return "model.mlp", _hidden(cfg.layers, width, n_out), ""


def _sequential(layers, indent: int) -> str:
    pad = " " * indent
    rows = "".join(f"{pad}({name!r}, {expr}),\n" for name, expr, _ in layers).replace("'", '"')
    return f"nn.Sequential(OrderedDict([\n{rows}]))"


def _recurrent_class(cfg, shape: tuple[int, ...], n_out: int) -> str:
    from torchtui.engine.models.rnn import sequence_shape

    steps, features = sequence_shape(shape)
    args = [str(features), str(cfg.hidden_size)]
    args += [f"num_layers={cfg.num_layers}"] if cfg.num_layers != 1 else []
    args += ["batch_first=True"] + (["bidirectional=True"] if cfg.bidirectional else [])
    args += [f"dropout={cfg.rnn_dropout!r}"] if cfg.rnn_dropout else []
    if cfg.pooling == "mean":
        pooled, summary = "out.mean(dim=1)", "the mean over its steps"
    elif cfg.bidirectional:
        pooled = f"torch.cat([out[:, -1, :{cfg.hidden_size}], out[:, 0, {cfg.hidden_size}:]], dim=1)"
        summary = "each direction's last step"
    else:
        pooled, summary = "out[:, -1]", "its last step"
    mlp = _sequential(_hidden(cfg.layers, cfg.hidden_size * (2 if cfg.bidirectional else 1), n_out), 12)
    return fill("""
        class RecurrentNet(nn.Module):
            \"\"\"$article $cell over ($steps steps × $features features) sequences, summarised by $summary, then the head.\"\"\"

            def __init__(self):
                super().__init__()
                self.rnn = nn.$cell($args)
                self.mlp = $mlp

            def forward(self, x):
                out, _ = self.rnn(x.reshape(len(x), $steps, $features))
                return self.mlp($pooled)
        """, article="An" if cfg.cell != "gru" else "A", cell=CELLS[cfg.cell], steps=steps, features=features,  # noqa: E501
                summary=summary, args=", ".join(args),
                mlp=mlp.replace("\n]))", "\n        ]))"), pooled=pooled)


def _init(cfg, prefix: str, layers: list) -> str:
    """The init the engine applies after building: each weighted layer with the gain of the activation after it."""
    if cfg.init == "default":
        return ""
    targets = []  # (attribute, (gain name, slope))
    for i, (name, _, kind) in enumerate(layers):
        if kind != "weighted":
            continue
        after = ("linear", 0.0)
        for _, _, later in layers[i + 1:]:
            if later == "weighted":
                break
            if isinstance(later, tuple):
                after = later
                break
        targets.append((f"{prefix}.{name}", after))
    leaky = any(gain == "leaky_relu" for _, (gain, _) in targets)
    pairs = ", ".join(f"({t}, {g!r}, {s!r})" if leaky else f"({t}, {g!r})" for t, (g, s) in targets).replace("'", '"')
    each = "layer, nonlinearity, slope" if leaky else "layer, nonlinearity"
    gain = "nn.init.calculate_gain(nonlinearity, slope)" if leaky else "nn.init.calculate_gain(nonlinearity)"
    fills = {
        "xavier_uniform": f"nn.init.xavier_uniform_(layer.weight, gain={gain})",
        "xavier_normal": f"nn.init.xavier_normal_(layer.weight, gain={gain})",
        "kaiming_uniform": "nn.init.kaiming_uniform_(layer.weight, " + ("a=slope, " if leaky else "")
                           + "nonlinearity=nonlinearity)",
        "kaiming_normal": "nn.init.kaiming_normal_(layer.weight, " + ("a=slope, " if leaky else "")
                          + "nonlinearity=nonlinearity)",
        "uniform": f"nn.init.uniform_(layer.weight, {cfg.init_a!r}, {cfg.init_b!r})",
        "normal": f"nn.init.normal_(layer.weight, 0.0, {cfg.init_std!r})",
    }
    items = [t for t, _ in targets] if cfg.init in ("uniform", "normal") else pairs.split("), (")
    if cfg.init not in ("uniform", "normal"):
        items = [("" if i == 0 else "(") + item + ("" if i == len(items) - 1 else ")") for i, item in enumerate(items)]
    listed = ", ".join(items)
    if len(listed) > 60:
        listed = "\n" + "".join(f"    {item},\n" for item in items)
    loop = f"for {'layer' if cfg.init in ('uniform', 'normal') else each} in [{listed}]:\n"
    why = ("scaled by the gain of the next activation" if cfg.init not in ("uniform", "normal")
           else "drawn afresh")
    return (f"# model.init {cfg.init}: weights {why}, zero biases.\n"
            + loop + f"    {fills[cfg.init]}\n    nn.init.zeros_(layer.bias)\n")


def _custom(cfg, shape: tuple[int, ...], n_out: int) -> str:
    """The user's class imported by path, built with the preset's kwargs plus the sizes its signature names."""
    from torchtui.engine.models.custom import size_arguments
    from torchtui.engine.schema import ConfigError
    from torchtui.engine.usercode import UserCodeError, load_object, split_ref

    _file, name = split_ref(cfg.module)
    try:
        cls, path = load_object(cfg.module, "model.module")
    except UserCodeError as err:
        raise ConfigError([str(err)]) from None
    kwargs = dict(cfg.kwargs)
    try:
        params = inspect.signature(cls).parameters
    except (TypeError, ValueError):
        params = {}
    for key, value in size_arguments(shape, n_out).items():
        if key in params and key not in kwargs:
            kwargs[key] = value
    args = ", ".join(f"{k}={v!r}" for k, v in kwargs.items())
    return f"{name} = load_from_file({str(path)!r}, {name!r})  # model.module\nmodel = {name}({args})\n"
